//! `seckill db migrate | rollback`.

use super::pool;
use crate::settings::Settings;
use anyhow::Context;
use std::process::ExitCode;

pub(crate) async fn run(s: &Settings, rollback: bool) -> anyhow::Result<ExitCode> {
    let pool = pool(s).await?;
    if rollback {
        seckill_db::pool::rollback(&pool, 0)
            .await
            .context("Failed to roll back")?;
        eprintln!("migrations reverted");
    } else {
        seckill_db::pool::migrate(&pool)
            .await
            .context("Failed to migrate")?;
        eprintln!("migrations applied");
    }
    Ok(ExitCode::SUCCESS)
}
