//! `seckill db migrate | rollback`.

use super::migrator;
use crate::settings::Settings;
use anyhow::Context;
use std::process::ExitCode;

pub(crate) async fn run(s: &Settings, rollback: bool) -> anyhow::Result<ExitCode> {
    // As the schema owner: the application user may not create or alter tables.
    let pool = migrator(s).await?;
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
