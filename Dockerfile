# oxcd image: `oxcd` (the entrypoint, etcd's flags) and `oxcd-operator` (the operator chart runs
# `oxcd-operator run` from this same image), built in release mode by scripts/build-release.sh.
#   docker build -t oxcd:0.1.0 .      (or scripts/build-image.sh, with buildah)
#   docker run --rm -p 2379:2379 oxcd:0.1.0 --listen-client-urls=http://0.0.0.0:2379 \
#       --advertise-client-urls=http://127.0.0.1:2379

# The base images; scripts/build-image.sh --local-bases passes locally made ones where no
# registry is reachable.
ARG RUST_IMAGE=docker.io/library/rust:1.89-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# ---- build: the release binaries ----------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# scripts/build-release.sh installs the build dependencies (g++, libclang, protoc) with apt-get
# and builds both binaries into /out.
ENV CARGO_TARGET_DIR=/src/target
RUN scripts/build-release.sh /out

# ---- runtime: slim Debian, non-root -------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# RocksDB is C++: the binaries need libstdc++6 and libgcc-s1, which bookworm-slim carries.
RUN groupadd --system --gid 65532 oxcd \
    && useradd --system --uid 65532 --gid oxcd --home-dir /var/lib/oxcd --create-home \
        --shell /usr/sbin/nologin oxcd
COPY --from=build /out/oxcd /out/oxcd-operator /usr/local/bin/
USER 65532:65532
WORKDIR /var/lib/oxcd
VOLUME ["/var/lib/oxcd"]
# Clients, peers, metrics.
EXPOSE 2379 2380 8080
ENTRYPOINT ["oxcd"]
CMD ["--data-dir=/var/lib/oxcd/default.oxcd"]
