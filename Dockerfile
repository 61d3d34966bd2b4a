# Builds the `huiyin` binary. Used by docker-compose.yml; not by the tests.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p api --bin huiyin

FROM debian:bookworm-slim
# The summary report's PDF is set in WenQuanYi Micro Hei (CJK with Latin and digits).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 huiyin
COPY --from=build /src/target/release/huiyin /usr/local/bin/huiyin
USER huiyin
ENV HUIYIN_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["huiyin"]
CMD ["serve"]
