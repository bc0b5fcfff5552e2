//! A child process that is killed (and reaped) when its guard drops, and where the
//! workspace's binaries are.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Child;

/// Path of a binary of this workspace (`seckill-worker`, ...) built next to the running test:
/// tests of one crate spawn another crate's binary this way, so crates never depend on each
/// other to test end to end. `make test` builds every binary before the tests run.
pub fn bin_path(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("Failed to find the test executable")?;
    // target/<profile>/deps/test-binary -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target/<profile> parent")?;
    let candidate = profile_dir.join(name);
    if !candidate.exists() {
        bail!(
            "{} does not exist: run `cargo build --workspace` first (make test does)",
            candidate.display()
        );
    }
    Ok(candidate)
}

#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILLs the process now and waits for it, as a crash would end it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
