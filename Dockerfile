# syntax=docker/dockerfile:1
# Not built on the development machine (no Docker engine there); kept simple.
# The patch release is pinned: it is go.mod's toolchain line, and the image's
# GOTOOLCHAIN=local means it builds with exactly this one.
FROM golang:1.26.10-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version is stamped here: .git is not in the build context (see
# .dockerignore), so the toolchain cannot read it. Pass both, e.g.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#                --build-arg REVISION=$(git rev-parse HEAD) .
# `shebao version` and the shebao_build_info metric report them.
ARG VERSION=devel
ARG REVISION=
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
    -o /out/shebao ./cmd/shebao

# No shell and no HTTP client in this image: health checks run
# `shebao probe /livez` or `shebao probe /readyz` (see compose.yaml).
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=devel
ARG REVISION=
LABEL org.opencontainers.image.version="${VERSION}" org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/shebao /usr/local/bin/shebao
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/shebao", "serve"]
