package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// mayUseGroupSQL is true when the user (u) may use the group (g): the one rule shared by the
// key lookup and MayUseGroup.
const mayUseGroupSQL = "(NOT g.exclusive OR EXISTS (SELECT 1 FROM user_groups ug WHERE ug.user_id = %s AND ug.group_id = g.id))"

func (d *DB) UserGroupIDs(ctx context.Context, userID int64) ([]int64, error) {
	rows, err := d.r.QueryContext(ctx, "SELECT group_id FROM user_groups WHERE user_id = $1 ORDER BY group_id", userID)
	if err != nil {
		return nil, wrap(fmt.Sprintf("user %d groups", userID), err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(fmt.Sprintf("user %d groups", userID), err)
		}
		ids = append(ids, id)
	}
	return ids, wrap(fmt.Sprintf("user %d groups", userID), rows.Err())
}

// SetUserGroups replaces the user's allowed groups in one transaction. An unknown user or
// group fails the foreign key: ErrInvalid, and nothing changes.
func (d *DB) SetUserGroups(ctx context.Context, userID int64, groupIDs []int64) error {
	groupIDs = slices.Compact(slices.Sorted(slices.Values(groupIDs)))
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM user_groups WHERE user_id = $1", userID); err != nil {
			return err
		}
		if len(groupIDs) == 0 {
			return nil
		}
		values := make([]string, len(groupIDs))
		args := []any{userID}
		for i, g := range groupIDs {
			values[i] = fmt.Sprintf("($1, $%d)", i+2)
			args = append(args, g)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO user_groups (user_id, group_id) VALUES "+strings.Join(values, ", "), args...)
		return err
	})
	return wrap(fmt.Sprintf("set user %d groups", userID), err)
}

func (d *DB) MayUseGroup(ctx context.Context, userID, groupID int64) (bool, error) {
	var ok bool
	err := d.r.QueryRowContext(ctx, "SELECT "+fmt.Sprintf(mayUseGroupSQL, "$1")+" FROM groups g WHERE g.id = $2",
		userID, groupID).Scan(&ok)
	if err != nil {
		return false, wrap(fmt.Sprintf("may user %d use group %d", userID, groupID), err)
	}
	return ok, nil
}
