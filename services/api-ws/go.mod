module github.com/chat5202ol/mop/services/api-ws

go 1.26
