worker_count = (Concurrent.processor_count * 0.666).ceil
workers ENV.fetch("WEB_CONCURRENCY") { worker_count }
pidfile ENV.fetch("PIDFILE") { "tmp/pids/server.pid" }
