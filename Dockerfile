# syntax=docker/dockerfile:1
# Not built on the development machine (no Docker engine there); kept simple.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/shebao ./cmd/shebao

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shebao /usr/local/bin/shebao
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/shebao", "serve"]
