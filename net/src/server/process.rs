//! The process's standard metrics (`process_resident_memory_bytes`,
//! `process_open_fds`, ...) from the `prometheus` crate's collector, with
//! `process_cpu_seconds_total` in microseconds instead of the collector's
//! whole seconds: a benchmark phase of a few seconds needs the fraction.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Opts};

const CPU_SECONDS: &str = "process_cpu_seconds_total";

pub(crate) struct ProcessMetrics {
    standard: ProcessCollector,
    cpu: Counter,
}

impl ProcessMetrics {
    pub(crate) fn for_self() -> ProcessMetrics {
        let cpu = Counter::with_opts(Opts::new(
            CPU_SECONDS,
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("valid counter options");
        ProcessMetrics {
            standard: ProcessCollector::for_self(),
            cpu,
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        // The standard collector describes `process_cpu_seconds_total` too,
        // under the same name and help.
        self.standard.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> = self
            .standard
            .collect()
            .into_iter()
            .filter(|family| family.name() != CPU_SECONDS)
            .collect();
        if let Some(now) = cpu_seconds() {
            let past = self.cpu.get();
            if now > past {
                self.cpu.inc_by(now - past);
            }
        }
        families.extend(self.cpu.collect());
        families
    }
}

/// User and system CPU time of this process so far.
fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_have_a_fraction_and_the_standard_metrics_stay() {
        let metrics = ProcessMetrics::for_self();
        // Burn a little CPU, far less than a second.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let families = metrics.collect();
        let cpu: Vec<_> = families
            .iter()
            .filter(|f| f.name() == CPU_SECONDS)
            .collect();
        assert_eq!(cpu.len(), 1, "one CPU family");
        let value = cpu[0].get_metric()[0].get_counter().get_value();
        assert!(value > 0.0 && value.fract() != 0.0, "{value}");
        for name in ["process_resident_memory_bytes", "process_open_fds"] {
            assert!(families.iter().any(|f| f.name() == name), "{name}");
        }
    }
}
