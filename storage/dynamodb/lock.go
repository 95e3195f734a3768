package dynamodb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/caddycache/caddy-cache/storage"
)

// Locks (storage.Locker) are items of the same table:
//
//	pk         S  <namespace>#l:<sha256 of the lock name>
//	token      S  the holder's random token
//	lock_exp   N  when the lock expires, Unix milliseconds
//	expires_at N  the same in seconds rounded up, so TTL reclaims it
//
// They have neither ns nor k, so List, Stats and DeleteExpired (which only
// look at items with both) never see them, and Get never returns one.

// lockPK returns the partition key of the lock name.
func (d *DynamoDB) lockPK(name string) string {
	sum := sha256.Sum256([]byte(name))
	return d.ns + "#l:" + hex.EncodeToString(sum[:])
}

// Lock implements storage.Locker with a conditional PutItem: it succeeds
// when there is no lock item, or when the one there has expired.
func (d *DynamoDB) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	unlock, ok, err := d.lock(ctx, name, ttl)
	_ = d.observe(err)
	return unlock, ok, err
}

func (d *DynamoDB) lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return nil, false, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	pk := d.lockPK(name)
	now := time.Now()
	exp := now.Add(max(ttl, time.Millisecond))
	_, err := d.shared.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(d.shared.name),
		Item: map[string]types.AttributeValue{
			"pk":         &types.AttributeValueMemberS{Value: pk},
			"token":      &types.AttributeValueMemberS{Value: token},
			"lock_exp":   numAttr(exp.UnixMilli()),
			ttlAttribute: numAttr(expirySeconds(exp)),
		},
		ConditionExpression:      aws.String("attribute_not_exists(pk) OR #x < :now"),
		ExpressionAttributeNames: map[string]string{"#x": "lock_exp"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": numAttr(now.UnixMilli()),
		},
	})
	if _, ok := errors.AsType[*types.ConditionalCheckFailedException](err); ok {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("dynamodb lock: %w", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		// only this holder's: it may have expired and been taken since
		_, err := d.shared.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 aws.String(d.shared.name),
			Key:                       keyOf(pk),
			ConditionExpression:       aws.String("#t = :t"),
			ExpressionAttributeNames:  map[string]string{"#t": "token"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: token}},
		})
		if _, ok := errors.AsType[*types.ConditionalCheckFailedException](err); ok {
			err = nil
		}
		_ = d.observe(err)
	}, true, nil
}

// Locked implements storage.Locker with a consistent GetItem.
func (d *DynamoDB) Locked(ctx context.Context, name string) (bool, error) {
	held, err := d.locked(ctx, name)
	_ = d.observe(err)
	return held, err
}

func (d *DynamoDB) locked(ctx context.Context, name string) (bool, error) {
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return false, err
	}
	out, err := d.shared.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(d.shared.name),
		Key:                      keyOf(d.lockPK(name)),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#x"),
		ExpressionAttributeNames: map[string]string{"#x": "lock_exp"},
	})
	if err != nil {
		return false, fmt.Errorf("dynamodb locked: %w", err)
	}
	exp, ok := num(out.Item["lock_exp"])
	return ok && time.Now().UnixMilli() <= exp, nil
}

var _ storage.Locker = (*DynamoDB)(nil)
