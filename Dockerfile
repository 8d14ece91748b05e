# The container images of homeostat, for docker and kind (this machine has no
# docker: `cargo xtask images` builds the same images with buildah). One
# target per image:
#
#   docker build --target oms      -t ghcr.io/homeostat-dev/oms-sample:0.1.0 .
#   docker build --target operator -t ghcr.io/homeostat-dev/homeostat-operator:0.1.0 .
#   docker build --target detector -t ghcr.io/homeostat-dev/homeostat-detector:0.1.0 .
#
# Each holds one program on distroless's cc base (glibc, libgcc, CA
# certificates, no shell) and runs as its numeric non-root user.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
        -p homeostat-oms -p homeostat-operator -p homeostat-detector \
 && mkdir /out \
 && cp target/release/oms target/release/homeostat-operator target/release/homeostat-detector /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS oms
COPY --from=build /out/oms /usr/local/bin/oms
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/oms"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/homeostat-operator /usr/local/bin/homeostat-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/homeostat-operator"]

FROM gcr.io/distroless/cc-debian12:nonroot AS detector
COPY --from=build /out/homeostat-detector /usr/local/bin/homeostat-detector
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/homeostat-detector"]
