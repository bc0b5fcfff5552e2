//! `seckill db migrate | rollback`.

use super::migrator;
use crate::settings::Settings;
use seckill_runtime::config::explain;
use std::process::ExitCode;

pub(crate) async fn run(s: &Settings, rollback: bool) -> anyhow::Result<ExitCode> {
    // As the schema owner: the application user may not create or alter tables.
    let pool = migrator(s).await?;
    let owner = s.mysql.redacted_migrate_url();
    if rollback {
        seckill_db::pool::rollback(&pool, 0)
            .await
            .map_err(|e| explain(e, format!("Failed to roll back (as {owner})"), "mysql.tls"))?;
        eprintln!("migrations reverted");
    } else {
        seckill_db::pool::migrate(&pool)
            .await
            .map_err(|e| explain(e, format!("Failed to migrate (as {owner})"), "mysql.tls"))?;
        eprintln!("migrations applied");
    }
    Ok(ExitCode::SUCCESS)
}
