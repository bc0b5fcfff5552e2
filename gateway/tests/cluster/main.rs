//! The whole system on a real Redis Cluster (3 primaries, 3 replicas, the module on each):
//! activities spread over the shards, a primary SIGKILLed during a sale at full speed (with
//! and without `redis.min_replicas`), a live activity's slot resharded during its sale.
//! Each test starts its own cluster, database, gateway and worker; nextest runs these alone
//! (`.config/nextest.toml`), they load both cores.

mod failover;
mod reshard;
mod spread;
mod stack;
