#!/usr/bin/env bash
# Writes a Rails-like app for the build bench, committed in a git
# repository of its own: two images from one context, the app's root (1,432
# files): web, multi-stage (the Gemfile copied and installed first, then
# the app, a RUN over it, a runtime stage), and nginx, whose Dockerfile is
# in docker/nginx with its own ignore file (public/ and its own directory
# only). The root's .dockerignore leaves out log/, tmp/ and node_modules/,
# which hold files, as a working checkout's do.
#
#   ci/bench/railsapp.sh DIR BASE REGISTRY
#   BENCH_APP=DIR BENCH_CHANGE=DIR/app/models/f1.rb ci/bench.sh build
#
# BASE is the base image (the test environment's $SHIPIT_TEST_BASE) and
# REGISTRY where the images go ($SHIPIT_TEST_REGISTRY). DIR is replaced.
set -euo pipefail
app=${1:?DIR}
base=${2:?BASE image}
reg=${3:?REGISTRY}
rm -rf "$app"
mkdir -p "$app"
cd "$app"
for d in models controllers views/users views/posts helpers jobs mailers channels; do mkdir -p app/$d; done
for i in $(seq 1 120); do printf 'class F%s < ApplicationRecord\n  # %s\n  has_many :things\nend\n%*s\n' $i $i $((i*7)) '' > app/models/f$i.rb; done
for i in $(seq 1 80); do printf 'class C%sController < ApplicationController\n  def index; end\nend\n%*s\n' $i $((i*5)) '' > app/controllers/c${i}_controller.rb; done
for i in $(seq 1 100); do printf '<div>%s</div>\n%*s\n' $i $((i*3)) '' > app/views/users/v$i.html.erb; cp app/views/users/v$i.html.erb app/views/posts/p$i.html.erb; done
for i in $(seq 1 40); do echo "module H$i; end" > app/helpers/h$i.rb; echo "class J$i < ApplicationJob; end" > app/jobs/j$i.rb; done
mkdir -p config/initializers config/environments db/migrate lib/tasks public/assets spec/models log tmp/cache node_modules/x vendor
for i in $(seq 1 30); do echo "Rails.application.config.x$i = $i" > config/initializers/i$i.rb; done
for e in development test production; do echo "Rails.application.configure do end # $e" > config/environments/$e.rb; done
for i in $(seq 1 150); do printf 'class M%s < ActiveRecord::Migration[7.1]\n def change; end\nend\n' $i > db/migrate/2024010100$(printf %04d $i)_m$i.rb; done
for i in $(seq 1 60); do head -c $((1000+i*37)) /dev/urandom | base64 > public/assets/a$i.css; done
for i in $(seq 1 100); do echo "RSpec.describe F$i do end" > spec/models/f${i}_spec.rb; done
for i in $(seq 1 200); do echo log$i > log/l$i.log; echo c > tmp/cache/c$i; echo x > node_modules/x/m$i.js; done
printf 'source "https://rubygems.org"\ngem "rails"\n' > Gemfile; head -c 3000 /dev/urandom | base64 > Gemfile.lock
printf 'log/\ntmp/\nnode_modules/\n.git\n' > .dockerignore
cat > Dockerfile <<D
ARG BASE=busybox
FROM \${BASE} AS build
WORKDIR /app
COPY Gemfile Gemfile.lock ./
RUN cat Gemfile.lock > /tmp/bundle
COPY . .
RUN find /app -name '*.rb' | wc -l > /app/count
FROM \${BASE} AS runtime
COPY --from=build /app /app
CMD ["/bin/sh"]
D
mkdir -p docker/nginx
cat > docker/nginx/Dockerfile <<D
ARG BASE=busybox
FROM \${BASE}
COPY public /usr/share/nginx/html
COPY docker/nginx/nginx.conf /etc/nginx/nginx.conf
D
echo 'events {}' > docker/nginx/nginx.conf
printf '*\n!public\n!docker/nginx\n' > docker/nginx/Dockerfile.dockerignore
cat > shipit.yaml <<Y
registry: $reg/unseen
images:
  web:
    context: .
    target: runtime
    args: {BASE: "$base"}
  nginx:
    context: .
    dockerfile: docker/nginx/Dockerfile
    args: {BASE: "$base"}
Y
printf '.shipit/\n' > .gitignore
git init -q -b main && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm init
find . -type f -not -path './.git/*' | wc -l
