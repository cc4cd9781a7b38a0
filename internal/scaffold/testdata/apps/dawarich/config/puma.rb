workers ENV.fetch("WEB_CONCURRENCY") { 0 }
