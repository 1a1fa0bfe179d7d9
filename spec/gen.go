package spec

//go:generate protoc --go_out=. --go_opt=paths=source_relative pigeonhole.proto content.proto
