# Pigeonhole relay image: a static binary on an empty base, run as an
# unprivileged user, with its data in a volume.
#
#   docker build -t pigeonhole .
#   docker run -d --name relay -p 4433:4433/udp -p 4433:4433/tcp -v pigeonhole-data:/data pigeonhole
#   docker logs relay          # the certificate fingerprint clients pin
#   docker exec relay pigeonhole fingerprint -data /data
#
# UDP 4433 is QUIC; TCP 4433 serves media with the default -media dir.
# Add flags after the image name (they override PIGEONHOLE_* variables
# and the config file), e.g. `... pigeonhole serve -data /data -metrics :9464`.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pigeonhole ./cmd/pigeonhole \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pigeon ./cmd/pigeon \
 && install -d -o 65532 -g 65532 -m 0700 /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/pigeonhole /out/pigeon /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME /data
EXPOSE 4433/udp 4433/tcp 9464/tcp
ENV QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true
ENTRYPOINT ["/usr/local/bin/pigeonhole"]
CMD ["serve", "-data", "/data", "-listen", ":4433"]
