# Builds Baton's two executables (`baton`, `baton-participants`) in release mode and puts them in a
# slim runtime image with libnats. Used by compose.yaml for the orchestrator replicas and the
# participants; `docker build -t baton .` builds it alone.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libnats-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a change to Baton's sources does not fetch them again.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib \
    && mkdir -p /out \
    && cp "$(swift build -c release --show-bin-path)/baton" "$(swift build -c release --show-bin-path)/baton-participants" /out/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libnats3.4 ca-certificates curl libcurl4 libxml2 tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 baton
COPY --from=build /out/ /usr/local/bin/
COPY workflows /etc/baton/workflows
USER baton
EXPOSE 8080
# The orchestrator by default; compose runs the participants from the same image.
ENTRYPOINT ["/usr/local/bin/baton"]
CMD ["serve", "--http", "0.0.0.0:8080", "--workflows", "/etc/baton/workflows"]
