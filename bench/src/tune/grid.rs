//! PUT and GET across object sizes and concurrency within a time budget.
//!
//! Cells run smallest first; each gets an equal share of what is left of
//! the budget (PUTs most of it, then GETs of what was put), and a cell
//! whose single round of requests would outlast twice its share at the
//! bandwidth measured so far is skipped and reported, never run past the
//! budget. Objects are deleted after each cell.

use super::advise::{size, Point};
use crate::raw::{delete_phase, get_phase, pattern, put_phase, Limits, PhaseReport};
use crate::BenchError;
use bytes::Bytes;
use serde::Serialize;
use std::rc::Rc;
use std::time::{Duration, Instant};
use woodpecker_engine::store::ObjectStore;

/// Objects and bytes one cell PUTs at most: the cell's share of the budget
/// is what normally ends it, these bound the store's disk and the clean-up.
const OBJECTS_MAX: usize = 4096;
const CELL_BYTES_MAX: u64 = 2 << 30;
/// GET bodies held at once at most: concurrency is cut to fit.
const GET_BYTES_IN_FLIGHT_MAX: u64 = 1 << 30;
/// PUTs take this share of a cell's time, GETs the rest.
const PUT_SHARE: f64 = 0.6;

#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub object_bytes: u64,
    pub inflight: usize,
    pub put: PhaseReport,
    /// GETs ran with this many in flight (fewer for large objects).
    pub get_inflight: usize,
    pub get: PhaseReport,
}

impl Cell {
    pub fn point(&self) -> Point {
        Point {
            object_bytes: self.object_bytes,
            inflight: self.inflight,
            mb_s: self.put.mb_s,
            p50_ms: self.put.latency_ms.p50,
            p99_ms: self.put.latency_ms.p99,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub object_bytes: u64,
    pub inflight: usize,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Grid {
    pub cells: Vec<Cell>,
    pub skipped: Vec<Skipped>,
}

pub async fn measure(
    store: &Rc<dyn ObjectStore>,
    prefix: &str,
    sizes: &[u64],
    inflights: &[usize],
    deadline: Instant,
) -> Result<Grid, BenchError> {
    let mut plan: Vec<(u64, usize)> = sizes
        .iter()
        .flat_map(|&s| inflights.iter().map(move |&i| (s, i)))
        .collect();
    plan.sort_unstable();
    plan.dedup();
    let mut grid = Grid::default();
    let mut best_mb_s: Option<f64> = None;
    for (n, &(object_bytes, inflight)) in plan.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / (plan.len() - n) as u32;
        let round_bytes = object_bytes * inflight as u64;
        if let Some(reason) = too_long(round_bytes, best_mb_s, share) {
            grid.skipped.push(Skipped {
                object_bytes,
                inflight,
                reason,
            });
            continue;
        }
        let cell_prefix = format!("{prefix}/{object_bytes}-{inflight}");
        let cell = run_cell(store, &cell_prefix, object_bytes, inflight, share).await?;
        best_mb_s = Some(best_mb_s.unwrap_or(0.0).max(cell.put.mb_s));
        tracing::info!(
            size = %size(object_bytes),
            inflight,
            put_mb_s = cell.put.mb_s,
            put_p99_ms = cell.put.latency_ms.p99,
            "tune: measured"
        );
        grid.cells.push(cell);
    }
    Ok(grid)
}

/// Why a round of `round_bytes` cannot fit in `share`, if it cannot.
fn too_long(round_bytes: u64, best_mb_s: Option<f64>, share: Duration) -> Option<String> {
    if share.is_zero() {
        return Some("the budget is spent".into());
    }
    let best = best_mb_s?;
    let round_s = round_bytes as f64 / 1e6 / best.max(f64::MIN_POSITIVE);
    (round_s > 2.0 * share.as_secs_f64()).then(|| {
        format!(
            "one round ({:.0} MB) would take about {round_s:.1} s at the {best:.0} MB/s \
             measured so far, past this cell's {:.1} s of the budget (--budget-s)",
            round_bytes as f64 / 1e6,
            share.as_secs_f64()
        )
    })
}

async fn run_cell(
    store: &Rc<dyn ObjectStore>,
    prefix: &str,
    object_bytes: u64,
    inflight: usize,
    share: Duration,
) -> Result<Cell, BenchError> {
    let data = Bytes::from(pattern(object_bytes as usize));
    let put_limits = Limits {
        objects: ((CELL_BYTES_MAX / object_bytes) as usize).clamp(inflight.max(8), OBJECTS_MAX),
        duration: share.mul_f64(PUT_SHARE),
        inflight,
    };
    // Conditional PUTs with the checksum: what the engine sends.
    let put = put_phase(store, prefix, &data, &put_limits, true).await;
    let get_inflight = inflight.min((GET_BYTES_IN_FLIGHT_MAX / object_bytes).max(1) as usize);
    let get = match &put {
        Ok(put) => {
            let limits = Limits {
                objects: put.objects,
                duration: share.mul_f64(1.0 - PUT_SHARE),
                inflight: get_inflight,
            };
            Some(get_phase(store, prefix, put.objects, &limits, data.len()).await)
        }
        Err(_) => None,
    };
    let written = put.as_ref().map_or(put_limits.objects, |put| put.objects);
    delete_phase(store, prefix, written).await?;
    Ok(Cell {
        object_bytes,
        inflight,
        put: put?,
        get_inflight,
        get: get.expect("a PUT phase that ran")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use woodpecker_engine::store::memory::MemoryStore;

    #[test]
    fn a_grid_measures_each_cell_cleans_up_and_skips_what_the_budget_cannot_hold() {
        futures::executor::block_on(async {
            let store: Rc<dyn ObjectStore> = Rc::new(MemoryStore::new());
            let deadline = Instant::now() + Duration::from_secs(20);
            let grid = measure(&store, "tune", &[4096, 1 << 16], &[1, 4], deadline)
                .await
                .unwrap();
            assert_eq!(grid.cells.len(), 4, "{:?}", grid.skipped);
            for cell in &grid.cells {
                assert!(cell.put.objects > 0 && cell.get.objects == cell.put.objects);
            }
            let left = store.list_page("tune", None, 10).await.unwrap();
            assert!(left.objects.is_empty(), "cells delete their objects");

            let spent = measure(&store, "tune", &[4096], &[1], Instant::now())
                .await
                .unwrap();
            assert!(spent.cells.is_empty());
            assert_eq!(spent.skipped[0].reason, "the budget is spent");
        });
    }

    #[test]
    fn a_round_longer_than_twice_the_share_is_skipped() {
        let share = Duration::from_secs(1);
        assert!(
            too_long(64 << 20, None, share).is_none(),
            "nothing known yet"
        );
        assert!(too_long(100_000_000, Some(100.0), share).is_none());
        let reason = too_long(300_000_000, Some(100.0), share).unwrap();
        assert!(reason.contains("about 3.0 s"), "{reason}");
    }
}
