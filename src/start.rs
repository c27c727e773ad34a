//! Starting the embedded client a command runs on, from the configuration.

use std::sync::Arc;
use woodpecker_engine::meta::etcd::EtcdMeta;
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::MetaStore;
use woodpecker_engine::store::StoreFactory;
use woodpecker_shards::Client;
use woodpecker_tuning::{MetaKind, Settings};

/// The client of `settings`: its engine, object store and metadata.
pub fn client(settings: &Settings) -> Result<Client, String> {
    settings.validate()?;
    let meta: Arc<dyn MetaStore> = match settings.meta.kind {
        MetaKind::Etcd => {
            Arc::new(EtcdMeta::connect(&settings.meta.etcd).map_err(|e| format!("etcd: {e}"))?)
        }
        MetaKind::Memory => Arc::new(MemoryMeta::new()),
    };
    let store = settings
        .store_config(None)
        .and_then(|config| StoreFactory::new(config).map_err(|e| e.to_string()))
        .map_err(|e| format!("store: {e}"))?;
    Client::start(settings.engine.clone(), store, meta).map_err(|e| e.to_string())
}

/// The client of an admin command: the configuration's store and etcd on
/// one shard with two fragment buffers (enough to seal a log; an admin
/// command writes nothing else), and never this process's memory, which
/// no other process could see.
pub fn admin_client(settings: &Settings) -> Result<Client, String> {
    if settings.meta.kind == MetaKind::Memory {
        return Err(
            "admin commands work on etcd: meta.kind is memory, which holds \
                    nothing another process made (set meta.kind: etcd)"
                .into(),
        );
    }
    let mut settings = settings.clone();
    settings.engine.shards = 1;
    settings.engine.shard_buffer_bytes_max = 2 * settings.engine.fragment_bytes_max;
    client(&settings)
}
