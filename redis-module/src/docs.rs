use redis_module::Context;
pub fn register(_ctx: &Context) -> Result<(), String> {
    Ok(())
}
