module github.com/chat5202ol/mop/services/loadgen

go 1.26
