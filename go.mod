module warden

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/dchest/siphash v1.2.3 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
