# bootstrap-node: one image that turns powered-off machines into a Kubernetes cluster on Flatcar.
#   docker build -t bootstrap-node .                                   (downloads and verifies assets)
#   docker build --build-arg ASSETS=context --build-arg ASSETS_DIR=assets \
#                --build-arg IMAGES=context --build-arg IMAGES_DIR=images -t bootstrap-node .   (air-gapped)
# See docs/install-and-assets.md for every build argument.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

# --- assets: Flatcar PXE kernel/initrd + disk image and its .sig, the sysexts (Kubernetes', SYSEXTS), add-ons; all verified ---
FROM ${BASE_IMAGE} AS assets
ARG ASSETS=download
ARG ASSETS_DIR=scripts/assets/none
ARG FLATCAR_VERSION=4593.2.5
ARG FLATCAR_CHANNEL=stable
ARG K8S_VERSION=v1.36.3
ARG ARCH=amd64
# flannel's and Argo CD's manifests come from their release trees on the Go module proxy, checked against
# the zip sha256 pinned in app/asset_scripts/addon-pins (which says how anyone can check a pin). Empty
# means the pinned release; another release needs its zip's sha256 too. ARGOCD_VERSION=none skips Argo CD.
ARG FLANNEL_VERSION=
ARG FLANNEL_SHA256=
ARG ARGOCD_VERSION=
ARG ARGOCD_SHA256=
ARG MODULE_PROXY_URL=https://proxy.golang.org
# The cilium CLI's release tarball, only with its sha256 (GitHub assets: not pinnable from here). v0.20.0 is
# the release cilium v1.20's CHANGELOG moved to. Or build it: scripts/cilium-cli-binary, then ASSETS_DIR/bin/.
ARG CILIUM_CLI_VERSION=v0.20.0
ARG CILIUM_CLI_SHA256=
# More system extensions from the sysext bakery, by release: "containerd-2.0.4 nvidia-runtime-v1.17.5".
ARG SYSEXTS=
SHELL ["/bin/sh", "-eu", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg unzip \
 && rm -rf /var/lib/apt/lists/*
COPY app/asset_scripts/ /usr/local/lib/bootstrap-node/
COPY app/cluster/flatcar-releases.txt /usr/local/lib/bootstrap-node/
COPY ${ASSETS_DIR}/ /context-assets/
RUN FLATCAR_VERSION="$FLATCAR_VERSION" FLATCAR_CHANNEL="$FLATCAR_CHANNEL" K8S_VERSION="$K8S_VERSION" \
    ARCH="$ARCH" FLANNEL_VERSION="$FLANNEL_VERSION" FLANNEL_SHA256="$FLANNEL_SHA256" \
    CILIUM_CLI_VERSION="$CILIUM_CLI_VERSION" CILIUM_CLI_SHA256="$CILIUM_CLI_SHA256" \
    ARGOCD_VERSION="$ARGOCD_VERSION" ARGOCD_SHA256="$ARGOCD_SHA256" SYSEXTS="$SYSEXTS" \
    MODULE_PROXY_URL="$MODULE_PROXY_URL" MODULE_CACHE=/tmp/modules \
    /usr/local/lib/bootstrap-node/fetch-and-verify "$ASSETS" /context-assets /assets

# --- build: the app in a virtualenv (from PyPI, or from a wheelhouse for air-gapped builds) ---
FROM ${BASE_IMAGE} AS build
ARG WHEELHOUSE=scripts/assets/none
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY ${WHEELHOUSE}/ /wheels/
COPY pyproject.toml requirements.lock README.md /src/
COPY app/ /src/app/
RUN python3 -m venv /opt/bootstrap-node \
 && set -- \
 && if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links=/wheels; fi \
 && /opt/bootstrap-node/bin/pip install --no-cache-dir "$@" -c /src/requirements.lock /src \
 && /opt/bootstrap-node/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/bootstrap-node -name __pycache__ -prune -exec rm -rf {} +

# --- images: the container images nodes pull (kubeadm's, kube-vip, the CNI's, Argo CD's when pinned),
#     as the OCI layout `serve` answers at /v2/; downloaded, or taken from the context; all verified ---
FROM build AS images
ARG IMAGES=download
ARG IMAGES_DIR=scripts/assets/none
ARG K8S_VERSION=v1.36.3
ARG ARCH=amd64
SHELL ["/bin/sh", "-eu", "-c"]
RUN if [ "$IMAGES" = download ]; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates skopeo \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY scripts/assets/fetch-images /usr/local/lib/bootstrap-node/
COPY --from=assets /assets/cni/ /manifests/cni/
COPY --from=assets /assets/gitops/ /manifests/gitops/
COPY app/templates/addons/ /manifests/addons/
COPY ${IMAGES_DIR}/ /context-images/
RUN K8S_VERSION="$K8S_VERSION" ARCH="$ARCH" \
    /usr/local/lib/bootstrap-node/fetch-images "$IMAGES" /context-images /images /manifests

# --- runtime: python3, dnsmasq, iPXE binaries, the app, templates, assets and images; nothing else ---
FROM ${BASE_IMAGE}
ARG FLATCAR_VERSION=4593.2.5
ARG FLATCAR_CHANNEL=stable
ARG K8S_VERSION=v1.36.3
ARG ARCH=amd64
ARG VERSION=0.1.0
ARG SYSEXTS=
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 dnsmasq-base ipxe iproute2 ipmitool chrony \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY --from=build /opt/bootstrap-node /opt/bootstrap-node
COPY --from=assets /assets /assets
COPY app/templates/ /usr/share/bootstrap-node/templates/
COPY --from=assets /assets/cni/ /usr/share/bootstrap-node/templates/cni/
COPY --from=assets /assets/gitops/ /usr/share/bootstrap-node/templates/gitops/
COPY --from=assets /assets/bin/ /usr/local/bin/
COPY --from=images /images /images
RUN mkdir -p /templates /config /output
ENV PATH=/opt/bootstrap-node/bin:$PATH \
    BOOTSTRAP_BUILTIN_TEMPLATES=/usr/share/bootstrap-node/templates \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="bootstrap-node" \
      org.opencontainers.image.description="PXE-boot bare metal into a Kubernetes cluster on Flatcar" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.bootstrap-node.flatcar.version="${FLATCAR_VERSION}" \
      io.bootstrap-node.flatcar.channel="${FLATCAR_CHANNEL}" \
      io.bootstrap-node.kubernetes.version="${K8S_VERSION}" \
      io.bootstrap-node.sysexts="${SYSEXTS}" \
      io.bootstrap-node.arch="${ARCH}"
VOLUME ["/config", "/output"]
ENTRYPOINT ["bootstrap-node"]
CMD ["--help"]
