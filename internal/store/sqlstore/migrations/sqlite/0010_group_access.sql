-- Exclusive groups (store.Group.Exclusive): only the users listed in user_groups may use one.
-- A group that is not exclusive stays open to every user, as before.
ALTER TABLE groups ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 0;

CREATE TABLE user_groups (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups (group_id);
