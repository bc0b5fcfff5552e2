# The local stack (scripts/run-local.sh, Procfile), included from the Makefile.
# Ports and state directory: see `scripts/run-local.sh --help` (SECKILL_*_PORT, SECKILL_STATE_DIR).
.PHONY: run run-cluster health logs dev stop db-init db-migrate db-rollback

run: ## Build and run the whole stack in the foreground (Redis+module, MariaDB, etcd, gateway, worker); Ctrl-C stops it
	bash scripts/run-local.sh run

run-cluster: ## Like run, with a Redis Cluster (3 primaries + 3 replicas, the module on each, redis.min_replicas 1) instead of one redis-server
	bash scripts/run-local.sh run-cluster

health: ## Check the running stack: gateway /health and /metrics, worker /metrics, Redis, MariaDB, etcd
	bash scripts/run-local.sh health

logs: ## Follow the local stack's logs (each process writes its own .state/logs/NAME.log)
	bash scripts/run-local.sh logs

dev: ## Like run, rebuilt and restarted on every source change (watchexec)
	bash scripts/run-local.sh dev

stop: ## Stop what a killed `make run` left behind (a normal run stops everything on Ctrl-C)
	bash scripts/run-local.sh stop

db-init: ## Create the database of mysql.url if missing, then migrate (the stack's MariaDB by default)
	bash scripts/run-local.sh db-init

db-migrate: ## Apply pending migrations (SECKILL_MYSQL__URL or the stack's MariaDB)
	bash scripts/run-local.sh db-migrate

db-rollback: ## Revert every migration: drops all tables (asks first; SECKILL_CONFIRM=yes in scripts)
	bash scripts/run-local.sh db-rollback
