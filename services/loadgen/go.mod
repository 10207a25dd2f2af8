module github.com/chat5202ol/mop/services/loadgen

go 1.26

require github.com/chat5202ol/mop/pkg v0.0.0

replace github.com/chat5202ol/mop/pkg => ../../pkg
