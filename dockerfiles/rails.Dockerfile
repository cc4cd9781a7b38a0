# Rails on Alpine, built by shipit.
#
# Stages: base (Ruby and the runtime environment), build (compilers and
# -dev packages), gems (bundle install), assets (assets:precompile) and
# runtime (only what runs: gems, the app and its assets, as a non-root
# user). Secrets reach the build only through secret mounts and SSH
# forwarding, configured in shipit.yaml:
#
#   images:
#     app:
#       secrets:
#         - {id: bundle_token, env: BUNDLE_GITHUB__COM}     # private gems over HTTPS
#         - {id: rails_master_key, src: config/master.key}  # for assets:precompile
#       ssh: [default]                                      # private gems over git+ssh
#
# One image serves the web server, the migration Job and workers:
#   command: [server] (the default), [migrate], [worker], or any command.

ARG RUBY_VERSION=3.3
ARG ALPINE_VERSION=3.20

FROM ruby:${RUBY_VERSION}-alpine${ALPINE_VERSION} AS base
WORKDIR /app
ENV RAILS_ENV=production \
    BUNDLE_DEPLOYMENT=1 \
    BUNDLE_PATH=/usr/local/bundle \
    BUNDLE_WITHOUT=development:test

FROM base AS build
# The apk cache mount keeps downloaded packages across builds.
RUN --mount=type=cache,id=apk,target=/etc/apk/cache,sharing=locked \
    apk add --update-cache build-base git openssh-client postgresql-dev yaml-dev libffi-dev tzdata nodejs

FROM build AS gems
COPY Gemfile Gemfile.lock ./
# A private gem token arrives as an environment variable of this step only
# (never a build argument), and SSH forwarding serves git+ssh gem sources.
RUN --mount=type=cache,id=bundler,target=/root/.bundle/cache,sharing=locked \
    --mount=type=secret,id=bundle_token,env=BUNDLE_GITHUB__COM \
    --mount=type=ssh \
    mkdir -p -m 0700 /root/.ssh && ssh-keyscan github.com >> /root/.ssh/known_hosts 2>/dev/null; \
    bundle config set --global cache_path /root/.bundle/cache && \
    bundle install --jobs 4 && \
    rm -rf "${BUNDLE_PATH}"/ruby/*/cache "${BUNDLE_PATH}"/ruby/*/bundler/gems/*/.git

FROM gems AS assets
COPY . .
# RAILS_MASTER_KEY exists only while this step runs.
RUN --mount=type=secret,id=rails_master_key,env=RAILS_MASTER_KEY \
    bundle exec bootsnap precompile app/ lib/ && \
    SECRET_KEY_BASE_DUMMY=1 bundle exec rails assets:precompile

FROM base AS runtime
RUN --mount=type=cache,id=apk,target=/etc/apk/cache,sharing=locked \
    apk add --update-cache libpq yaml libffi tzdata jemalloc && \
    addgroup -S -g 1000 rails && \
    adduser -S -D -u 1000 -G rails -h /app rails
ENV LD_PRELOAD=/usr/lib/libjemalloc.so.2 \
    RAILS_LOG_TO_STDOUT=1 \
    RAILS_SERVE_STATIC_FILES=1 \
    PORT=3000
COPY --from=gems /usr/local/bundle /usr/local/bundle
COPY --from=assets --chown=rails:rails /app /app
COPY --chmod=0755 <<'SH' /usr/local/bin/docker-entrypoint
#!/bin/sh
set -e
case "$1" in
  server) shift; exec bundle exec rails server -b 0.0.0.0 -p "$PORT" "$@" ;;
  migrate) exec bundle exec rails db:prepare ;;
  worker) shift; exec bundle exec "${WORKER:-sidekiq}" "$@" ;;
  *) exec "$@" ;;
esac
SH
USER 1000:1000
EXPOSE 3000
ENTRYPOINT ["docker-entrypoint"]
CMD ["server"]
