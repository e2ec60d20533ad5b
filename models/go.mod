module github.com/outpost-iot/outpost/models

go 1.26.0

require github.com/google/flatbuffers v25.12.19+incompatible

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.9 // indirect
	golang.org/x/sys v0.49.0
)
