//! Tools' access to a client's logs: fsck and its repairs, and raw
//! objects for `woodpecker inspect`. Each runs on a shard, where the
//! object store lives.

use crate::client::Client;
use bytes::Bytes;
use woodpecker_engine::fsck::{self, Finding, Repair, Report, Severity};
use woodpecker_engine::store::validate_key;
use woodpecker_engine::{Error, ErrorKind, Result};

impl Client {
    /// Checks one log, or every log and the objects of logs that have no
    /// record ([`woodpecker_engine::fsck`]).
    pub async fn fsck(&self, name: Option<&str>) -> Result<Report> {
        let logs = match name {
            Some(name) => vec![self.get_log(name).await?],
            None => self.list_logs().await?,
        };
        let mut report = Report::default();
        for log in logs {
            let part = self
                .on_shard(log.id, move |services| async move {
                    let mut part = Report::default();
                    fsck::check_log(
                        &*services.store,
                        &*services.meta,
                        &services.layout,
                        &log,
                        &mut part,
                    )
                    .await?;
                    Ok(part)
                })
                .await?;
            report.absorb(part);
        }
        if name.is_none() {
            let orphans = self
                .on_shard_index(0, |services| async move {
                    fsck::orphaned_logs(&*services.store, &*services.meta, &services.layout).await
                })
                .await?;
            for (log_dir, keys) in orphans {
                let log = format!("(no record: {log_dir})");
                report.findings.push(Finding {
                    severity: Severity::Problem,
                    log: log.clone(),
                    segment: None,
                    detail: format!(
                        "{} objects of a log with no record (a deletion cut short)",
                        keys.len()
                    ),
                });
                report.repairs.push(Repair::DeleteObjects { log, keys });
            }
        }
        Ok(report)
    }

    /// Carries out repairs fsck proposed: deletes objects nothing can read,
    /// and seals open segments by opening (then closing) a writer of their
    /// log, which fences the log's current writer if one still runs.
    pub async fn repair(&self, repairs: &[Repair]) -> Result<()> {
        for repair in repairs {
            match repair {
                Repair::DeleteObjects { keys, .. } => {
                    let keys = keys.clone();
                    self.on_shard_index(0, move |services| async move {
                        for key in keys {
                            services.store.delete(&key).await?;
                        }
                        Ok(())
                    })
                    .await?;
                }
                Repair::SealOpenSegment { log, .. } => {
                    self.open_writer(log).await?.close().await?;
                }
            }
        }
        Ok(())
    }

    /// One object's bytes, whole (for `woodpecker inspect`).
    pub async fn get_object(&self, key: &str) -> Result<Bytes> {
        validate_key(key).map_err(|e| Error::new(ErrorKind::Invalid, e.to_string()))?;
        let key = key.to_string();
        self.on_shard_index(0, move |services| async move {
            Ok(services.store.get(&key).await?)
        })
        .await
    }
}
