FROM ghcr.io/manyfold3d/manyfold-base AS runtime
COPY . .
