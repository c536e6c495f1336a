//! A checkpoint write killed with SIGKILL must leave the previous checkpoint complete and
//! still the one `latest` resolves to. The test runs this test binary again as a child (the
//! ignored `kill_child` test, selected by an environment variable), lets it commit step 1 and
//! start writing a large step 2 slowly, kills it with `kill -9`, and inspects the run folder.

use anyhow::Result;
use safeaware_common::fnv::fnv1a64_hex;
use safeaware_trainer::checkpoint::{
    cleanup_incomplete, latest_checkpoint, list_checkpoints, write_checkpoint,
};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SAFEAWARE_TEST_KILL_CHILD_RUN";
const WRITING_MARKER: &str = "child-is-writing-step-2";
const FINISHED_MARKER: &str = "child-finished";
const PAYLOAD_LEN: usize = 1 << 20;

/// Deterministic payload of a checkpoint: `weights.bin` and a manifest with its hash.
fn payload(step: u64) -> Vec<u8> {
    (0..PAYLOAD_LEN)
        .map(|i| ((i as u64 * 7 + step) % 251) as u8)
        .collect()
}

fn write_payload(dir: &Path, step: u64) -> Result<()> {
    let bytes = payload(step);
    fs::write(dir.join("weights.bin"), &bytes)?;
    fs::create_dir_all(dir.join("trainer_state"))?;
    fs::write(
        dir.join("trainer_state/manifest.txt"),
        format!("{step} {}", fnv1a64_hex(&bytes)),
    )?;
    Ok(())
}

fn verify_payload(dir: &Path, step: u64) {
    let bytes = fs::read(dir.join("weights.bin")).unwrap();
    assert_eq!(
        bytes.len(),
        PAYLOAD_LEN,
        "truncated weights in {}",
        dir.display()
    );
    let manifest = fs::read_to_string(dir.join("trainer_state/manifest.txt")).unwrap();
    assert_eq!(manifest, format!("{step} {}", fnv1a64_hex(&bytes)));
    assert_eq!(bytes, payload(step));
}

/// The child: commits step 1, then writes step 2 slowly until killed.
#[test]
#[ignore = "child process of checkpoint_survives_sigkill_mid_write"]
fn kill_child() {
    let Ok(run) = std::env::var(CHILD_ENV) else {
        return;
    };
    let run = PathBuf::from(run);
    write_checkpoint(&run, 1, |dir| write_payload(dir, 1)).unwrap();
    write_checkpoint(&run, 2, |dir| {
        let mut f = fs::File::create(dir.join("weights.bin"))?;
        let chunk = vec![0xabu8; 64 * 1024];
        for i in 0..100_000 {
            f.write_all(&chunk)?;
            f.flush()?;
            if i == 8 {
                fs::write(run.join(WRITING_MARKER), b"")?;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })
    .unwrap();
    fs::write(run.join(FINISHED_MARKER), b"").unwrap();
}

#[test]
fn checkpoint_survives_sigkill_mid_write() {
    let run = tempfile::tempdir().unwrap();
    let run = run.path();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run.join(WRITING_MARKER).exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "child never started writing step 2"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "child was not killed by SIGKILL: {status}"
        );
    }
    assert!(!run.join(FINISHED_MARKER).exists());

    // The interrupted write is visible only as a temporary folder with a partial file.
    let tmp = run.join("checkpoints/.tmp-step_2");
    let partial = fs::metadata(tmp.join("weights.bin")).unwrap().len();
    assert!(partial > 0, "the kill did not happen mid-write");
    assert!(!run.join("checkpoints/step_2").exists());

    // Resume sees step 1, complete.
    let latest = latest_checkpoint(run)
        .unwrap()
        .expect("a checkpoint survives");
    assert_eq!(latest.step, 1);
    assert_eq!(latest.path, run.join("checkpoints/step_1"));
    verify_payload(&latest.path, 1);
    assert_eq!(list_checkpoints(run).unwrap().len(), 1);

    // Cleanup removes the leftover, and the next write goes through.
    assert_eq!(cleanup_incomplete(run).unwrap(), std::slice::from_ref(&tmp));
    assert!(!tmp.exists());
    write_checkpoint(run, 2, |dir| write_payload(dir, 2)).unwrap();
    let latest = latest_checkpoint(run).unwrap().unwrap();
    assert_eq!(latest.step, 2);
    verify_payload(&latest.path, 2);
}
