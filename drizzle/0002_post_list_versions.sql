CREATE TABLE "post_list_versions" (
	"author_id" integer PRIMARY KEY NOT NULL,
	"version" bigint DEFAULT 0 NOT NULL
);
