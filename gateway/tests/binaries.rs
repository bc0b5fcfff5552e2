//! Every binary of the workspace answers `--version` with its name and version, and `--help`.

use std::process::Command;

fn run(bin: &std::path::Path, arg: &str) -> anyhow::Result<String> {
    let out = Command::new(bin).arg(arg).output()?;
    anyhow::ensure!(
        out.status.success(),
        "{} {arg}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_binary_has_version_and_help() -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    for name in [
        "seckill-gateway",
        "seckill-gateway-bench",
        "seckill-worker",
        "seckill",
    ] {
        let bin = seckill_testkit::bin_path(name)?;
        let v = run(&bin, "--version")?;
        assert_eq!(v.trim(), format!("{name} {version}"), "{name} --version");
        if name != "seckill-gateway-bench" {
            assert!(run(&bin, "--help")?.contains("Usage"), "{name} --help");
        }
    }
    Ok(())
}
