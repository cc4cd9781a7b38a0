# nginx in front of the app, built by shipit.
#
# Static assets come from the app image itself (APP_IMAGE, which shipit
# sets to the app image of the same release), so both images always serve
# the same build. The configuration is rendered from the environment when
# the container starts (the nginx image's envsubst of
# /etc/nginx/templates/*.template): APP_UPSTREAM (host:port of the app,
# default app:3000) and NGINX_PORT (default 8080).

ARG APP_IMAGE=app:latest
ARG NGINX_VERSION=1.27

FROM ${APP_IMAGE} AS app

FROM nginx:${NGINX_VERSION}-alpine AS runtime
ENV APP_UPSTREAM=app:3000 \
    NGINX_PORT=8080
COPY --from=app /app/public /usr/share/nginx/html
COPY <<'CONF' /etc/nginx/templates/default.conf.template
upstream app {
  server ${APP_UPSTREAM};
}
server {
  listen ${NGINX_PORT};
  root /usr/share/nginx/html;
  location ~ ^/(assets|packs)/ {
    gzip_static on;
    expires max;
    add_header Cache-Control public;
  }
  location / {
    try_files $uri @app;
  }
  location @app {
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_pass http://app;
  }
}
CONF
EXPOSE 8080
