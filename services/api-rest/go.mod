module github.com/chat5202ol/mop/services/api-rest

go 1.26
