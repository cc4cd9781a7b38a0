# nginx in front of the app, built by shipit.
#
# The configuration is rendered from the environment when the container
# starts (the nginx image's envsubst of /etc/nginx/templates/*.template):
# APP_UPSTREAM, the app's host:port (default 127.0.0.1:3000, the app in
# the same pod), and NGINX_PORT (default 8080).
#
# Static assets come from the app image, at run time: init containers of
# the pod copy public/ from the previous release's app image, then from
# this release's, into a shared volume mounted at /usr/share/nginx/html
# (shipit init's Deployment does this; shipit moves the app-previous pin).
# So pages of either release find their assets during a rolling update,
# and the two images are built and pinned together.

ARG NGINX_VERSION=1.27

FROM nginx:${NGINX_VERSION}-alpine AS runtime
ENV APP_UPSTREAM=127.0.0.1:3000 \
    NGINX_PORT=8080
COPY <<'CONF' /etc/nginx/templates/default.conf.template
# TLS ends at the Ingress: the scheme the client used is the Ingress's
# X-Forwarded-Proto, passed on as it came (nginx's own $scheme is http, and
# Rails' force_ssl would redirect every request). Without the header, the
# request reached nginx directly: its own scheme.
map $http_x_forwarded_proto $forwarded_proto {
  default $http_x_forwarded_proto;
  ""      $scheme;
}
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
    proxy_set_header X-Forwarded-Proto $forwarded_proto;
    proxy_pass http://app;
  }
}
CONF
EXPOSE 8080
