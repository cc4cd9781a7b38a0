threads_count = ENV.fetch("RAILS_MAX_THREADS") { 10 }
threads threads_count, threads_count
pidfile ENV.fetch("PIDFILE") {
  if ENV.fetch("RAILS_ENV") == "production"
    "/home/deploy/lobsters/shared/tmp/pids/puma.pid"
  else
    "tmp/puma.pid"
  end
}
workers ENV.fetch("PUMA_WORKERS") {
  if ENV.fetch("RAILS_ENV") == "production"
    Etc.nprocessors
  else
    2
  end
}
plugin :solid_queue if ENV["SOLID_QUEUE_IN_PUMA"]
