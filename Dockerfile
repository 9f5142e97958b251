# The bootstrap worker image. Two variants from this one file (docs/deploy-runpod.md):
#
#   baked  packages are in the image: the fast cold start (BOOTSTRAP_MODE=image); the default,
#          so a plain `docker build .` and the RunPod Hub build this one
#   slim   packages go to a venv on the network volume at boot (BOOTSTRAP_MODE=volume)
#
#   image/build.sh --variant slim            # fills in VERSION and REVISION; or by hand:
#   podman build --build-arg VARIANT=slim --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   (podman needs VARIANT given, baked too: docs/deploy-runpod.md, "RunPod Hub")
#
# Layers go from what changes least to what changes most: OS packages, the Python
# dependencies (keyed by their requirement text alone), then bootstrap's own code.
# Nothing secret is read at build time: no token is needed, none is accepted.

# Debian bookworm: its Python is 3.11, the version bootstrap targets, so no Python is built or
# downloaded; torch 2.9 wheels from the package index bring their own CUDA runtime and cuDNN,
# so the base needs no CUDA toolkit, only the host's driver (injected by the NVIDIA runtime).
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
# The extras of pyproject.toml the baked variant installs.
ARG BAKED_EXTRAS=f5
# baked or slim: which dependency stage the worker's layers go on (the last stage, below).
ARG VARIANT=baked

# -- the operating system: Python, tini, FFmpeg -------------------------------------------
FROM ${BASE_IMAGE} AS system
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Versions are not pinned: the Debian release is the pin, and its security updates should land.
# ffmpeg brings the shared libraries torchcodec loads (libavcodec, libavformat, libavdevice,
# ...) and the ffmpeg/ffprobe programs pydub calls. libpython3.11: torchcodec's custom ops
# library links against libpython3.11.so.1.0, which Debian's (static) python3 does not ship;
# without it torchaudio cannot decode (audio.E002). python3-venv: the stdlib venv. zstd:
# the environment's packed form is compressed with it (bootstrap/coldstart/packs.py), a quarter of
# the bytes to read from the network volume at boot.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates ffmpeg libpython3.11 python3 python3-pip python3-venv tini zstd \
    && rm -rf /var/lib/apt/lists/*
# A non-root user for platforms that run as one (the image itself stays root by default:
# RunPod's network volumes are owned by root). uid 1000 is the common host user.
RUN useradd --create-home --uid 1000 --shell /bin/bash worker
ENV PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# -- requirement lists, so the dependency layers below are keyed by their text only ---------
FROM system AS requirements
WORKDIR /build
COPY pyproject.toml image/requirements.py ./
RUN python3 requirements.py pyproject.toml > slim.txt

FROM requirements AS requirements-baked
ARG BAKED_EXTRAS
# Unquoted on purpose: BAKED_EXTRAS is a space-separated list of extras. torch.txt: the
# torch line alone (empty when the extras name no torch), for a layer of its own below.
RUN python3 requirements.py pyproject.toml ${BAKED_EXTRAS} > baked.txt \
    && { grep -E '^torch([=<>~!; ]|$)' baked.txt || true; } > torch.txt

# -- bootstrap and the F5-TTS app as a wheel ---------------------------------------------------
FROM system AS wheel
WORKDIR /build
COPY pyproject.toml ./
COPY bootstrap/ bootstrap/
COPY f5worker/ f5worker/
RUN python3 -m pip wheel --quiet --no-deps --wheel-dir /wheels .

# -- dependencies into the system Python ----------------------------------------------------
# --break-system-packages: Debian marks its Python "externally managed" (PEP 668). pip
# installs to /usr/local/lib/python3.11/dist-packages, apart from Debian's own packages, and
# this image has no other user of that Python.
FROM system AS slim-deps
# uv builds the worker's environment on the volume several times faster than pip (the
# install stage uses it when it is on PATH); it is one static binary, no Python imports.
ARG UV_VERSION=0.9.13
RUN python3 -m pip install --quiet --break-system-packages "uv==${UV_VERSION}"
COPY --from=requirements /build/slim.txt /etc/bootstrap/requirements.txt
RUN python3 -m pip install --quiet --break-system-packages -r /etc/bootstrap/requirements.txt
ENV BOOTSTRAP_MODE=volume
# The app this image serves (bootstrap/kernel/app.py): the F5-TTS worker.
ENV BOOTSTRAP_APP=f5worker.app:APP

FROM slim-deps AS baked-deps
# uv, like every other F5-TTS environment (scripts/venv.sh, the volume's): the overrides of
# image/overrides.txt drop gradio, which would hold the RunPod SDK at 1.10.0. --native-tls:
# the system's certificate store (a build behind a re-signing proxy has its CA there; uv's
# own roots would refuse it).
# torch and its CUDA libraries first, in a layer keyed by the torch line alone (6.7 of the
# 9.6 GB): a change to any other dependency rebuilds and pulls only the smaller layer
# above it. A build commits each layer through a copy of it on the build disk, so two
# layers also need less room at their peak than one (26.5 against 32.3 GB, measured).
COPY --from=requirements-baked /build/torch.txt /etc/bootstrap/requirements-torch.txt
RUN uv pip install --quiet --system --break-system-packages --native-tls --no-cache \
        -r /etc/bootstrap/requirements-torch.txt
COPY image/overrides.txt /etc/bootstrap/overrides.txt
COPY --from=requirements-baked /build/baked.txt /etc/bootstrap/requirements.txt
RUN uv pip install --quiet --system --break-system-packages --native-tls --no-cache \
        --override /etc/bootstrap/overrides.txt -r /etc/bootstrap/requirements.txt
ENV BOOTSTRAP_MODE=image

# -- the worker: bootstrap's own layers, written once, over the variant's dependencies ------
# The base is the one stage the variant names, so only that variant's dependency layers are
# built (BuildKit and buildah both skip a stage nothing uses; an unknown VARIANT fails here,
# as a missing image "<VARIANT>-deps").
FROM ${VARIANT}-deps AS worker
# Said again: a linter cannot follow a base named by an argument back to the system stage.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG VARIANT
ARG BASE_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
COPY --from=wheel /wheels/ /tmp/wheels/
RUN python3 -m pip install --quiet --no-cache-dir --break-system-packages --no-deps \
        /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
COPY --chmod=0755 entrypoint.sh /usr/local/bin/entrypoint.sh
# RunPod's handler-file convention: `python3 /opt/bootstrap/rp_handler.py --rp_serve_api`
# boots through bootstrap like the entrypoint (docs/deploy-runpod.md, "RunPod Hub").
COPY --chmod=0755 rp_handler.py /opt/bootstrap/rp_handler.py
# Bundled voices: jobs may use and list them, never delete them (docs/handler.md).
COPY voices/ /opt/bootstrap/voices/
COPY image/manifest.py /usr/local/share/bootstrap/manifest.py
WORKDIR /
# The baked variant also provides the worker's own stack; the slim one gets it on the volume.
RUN set -- \
    && if [ "$VARIANT" = baked ]; then set -- --module torch --module f5_tts --module runpod; fi \
    && python3 /usr/local/share/bootstrap/manifest.py /etc/bootstrap/image-manifest.txt \
        --variant "$VARIANT" --mode "$BOOTSTRAP_MODE" --version "$VERSION" \
        --revision "$REVISION" --base-image "$BASE_IMAGE" \
        --module bootstrap --module f5worker "$@" \
        --exe bootstrap --exe uv --exe tini --exe ffmpeg --exe ffprobe \
        --path /usr/local/bin/entrypoint.sh --path /etc/bootstrap/requirements.txt \
        --path /opt/bootstrap/voices --path /opt/bootstrap/rp_handler.py
LABEL org.opencontainers.image.title="bootstrap-worker" \
      org.opencontainers.image.description="F5-TTS RunPod worker booted by bootstrap (${VARIANT})" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.bootstrap.variant="${VARIANT}"
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/entrypoint.sh"]
CMD ["run"]
