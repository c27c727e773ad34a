//! The campaign's small mode, as `.ci/run` runs it: 20 runs of seeded
//! faults against a private etcd and MinIO, every history checked. The
//! first seed comes from the clock and is printed, with the seed of any
//! run that fails (replay it with `campaign run --seed S --runs 1`).

#[test]
fn twenty_runs_of_faults_break_no_guarantee() {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_campaign"))
        .args(["run", "--runs", "20"])
        .status()
        .expect("running the campaign");
    assert!(
        status.success(),
        "the campaign found violations (seeds above)"
    );
}
