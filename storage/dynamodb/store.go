package dynamodb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"

	"github.com/caddycache/caddy-cache/storage"
)

const (
	// ItemLimit is DynamoDB's item size limit.
	ItemLimit = 400 * 1024
	// PartSize is the most data bytes one part item holds.
	PartSize = 384 * 1024
	// maxPK is DynamoDB's partition key size limit.
	maxPK = 2048
	// itemOverhead covers what itemSize does not count exactly, with room
	// to spare.
	itemOverhead = 256
	// maxParts bounds the part count read from a manifest (about 3.8 GiB).
	maxParts = 10000
	// batchGet and batchWrite are the items per BatchGetItem request (kept
	// under the 16 MB response limit) and per BatchWriteItem request.
	batchGet   = 40
	batchWrite = 25
	// readAttempts bounds how often Get re-reads a manifest whose parts
	// were replaced while it read them.
	readAttempts = 5
	// versionAttribute holds the version of a manifest item, which
	// Update's conditional write checks.
	versionAttribute = "ver"
)

// errPartMissing means a part named by a manifest was not found.
var errPartMissing = errors.New("part missing")

// pk returns the partition key of key's manifest.
func (d *DynamoDB) pk(key string) string {
	if len(d.ns)+1+len(key) <= maxPK {
		return d.ns + ":" + key
	}
	sum := sha256.Sum256([]byte(key))
	return d.ns + "#h:" + hex.EncodeToString(sum[:])
}

// partPK returns the partition key of part i of generation gen.
func (d *DynamoDB) partPK(gen string, i int) string {
	return d.ns + "#p:" + gen + ":" + strconv.Itoa(i)
}

func keyOf(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}
}

func str(av types.AttributeValue) (string, bool) {
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return "", false
	}
	return s.Value, true
}

func num(av types.AttributeValue) (int64, bool) {
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}

func bin(av types.AttributeValue) ([]byte, bool) {
	b, ok := av.(*types.AttributeValueMemberB)
	if !ok {
		return nil, false
	}
	return b.Value, true
}

func numAttr(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// expirySeconds is the TTL attribute value for t: Unix seconds rounded up,
// so DynamoDB never deletes an entry before it expires.
func expirySeconds(t time.Time) int64 {
	s := t.Unix()
	if t.After(time.Unix(s, 0)) {
		s++
	}
	return s
}

// itemSize is an upper bound of DynamoDB's size of item, not counting
// itemOverhead.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, av := range item {
		n += len(name)
		switch v := av.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberB:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += 21
		case *types.AttributeValueMemberL:
			n += 3
			for _, e := range v.Value {
				n += 1 + itemSize(map[string]types.AttributeValue{"": e})
			}
		default:
			n += 32
		}
	}
	return n
}

func (d *DynamoDB) get(ctx context.Context, key string) (*storage.Entry, error) {
	e, _, err := d.read(ctx, key, d.consistent)
	return e, err
}

// version is the state of a manifest item that a conditional write
// expects: absent, present without a version attribute (written before
// there was one), or present with version ver.
type version struct {
	exists bool
	ver    string
}

// condition returns the ConditionExpression (with #v for the version
// attribute and :old for v.ver) that holds while the manifest is still v.
func (v version) condition() (string, map[string]types.AttributeValue) {
	switch {
	case !v.exists:
		return "attribute_not_exists(pk)", nil
	case v.ver == "":
		return "attribute_exists(pk) AND attribute_not_exists(#v)", nil
	}
	return "#v = :old", map[string]types.AttributeValue{":old": &types.AttributeValueMemberN{Value: v.ver}}
}

// newVersion is the version attribute of a manifest being written: a fresh
// random number on every write, so that any Put, not only an Update, makes
// a concurrent Update's conditional write fail.
func newVersion() types.AttributeValue {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return numAttr(int64(binary.BigEndian.Uint64(b[:]) >> 1))
}

// storedVersion returns the version of the manifest stored under key, or ""
// when it cannot tell.
func (d *DynamoDB) storedVersion(ctx context.Context, key string) string {
	out, err := d.shared.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(d.shared.name),
		Key:                      keyOf(d.pk(key)),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#v"),
		ExpressionAttributeNames: map[string]string{"#v": versionAttribute},
	})
	if err != nil {
		return ""
	}
	n, _ := out.Item[versionAttribute].(*types.AttributeValueMemberN)
	if n == nil {
		return ""
	}
	return n.Value
}

// read is get that also returns the version of the manifest item it read
// (the last one, when it read the manifest again).
func (d *DynamoDB) read(ctx context.Context, key string, consistent bool) (*storage.Entry, version, error) {
	var v version
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return nil, v, err
	}
	pk := d.pk(key)
	lastGen := ""
	for attempt := 1; ; attempt++ {
		out, err := d.shared.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(d.shared.name),
			Key:            keyOf(pk),
			ConsistentRead: aws.Bool(consistent),
		})
		if err != nil {
			return nil, v, fmt.Errorf("dynamodb get: %w", err)
		}
		item := out.Item
		v = version{exists: item != nil}
		if n, ok := item[versionAttribute].(*types.AttributeValueMemberN); ok {
			v.ver = n.Value
		}
		if ns, _ := str(item["ns"]); ns != d.ns {
			return nil, v, storage.ErrNotFound // absent, or not ours
		}
		if k, _ := str(item["k"]); k != key {
			return nil, v, storage.ErrNotFound
		}
		now := time.Now()
		if exp, ok := num(item[ttlAttribute]); ok && !now.Before(time.Unix(exp, 0)) {
			return nil, v, storage.ErrNotFound // expired, TTL has not deleted it yet
		}
		var data []byte
		if parts, ok := num(item["parts"]); ok {
			gen, _ := str(item["gen"])
			if gen == lastGen {
				return nil, v, fmt.Errorf("dynamodb get: %w: part of the body is missing", storage.ErrCorrupt)
			}
			size, _ := num(item["size"])
			data, err = d.readParts(ctx, gen, parts, size)
			if errors.Is(err, errPartMissing) && attempt < readAttempts {
				// Most likely replaced while we read it: read the
				// manifest again. The same generation again means the
				// part is really gone.
				lastGen = gen
				continue
			}
			if err != nil {
				return nil, v, fmt.Errorf("dynamodb get: %w", err)
			}
		} else if data, ok = bin(item["data"]); !ok {
			return nil, v, fmt.Errorf("dynamodb get: %w: no data attribute", storage.ErrCorrupt)
		}
		e, err := storage.Decode(data)
		if err != nil {
			return nil, v, fmt.Errorf("dynamodb get: %w", err)
		}
		if e.Expired(now) {
			return nil, v, storage.ErrNotFound
		}
		return e, v, nil
	}
}

// readParts reads and joins the n parts of generation gen.
func (d *DynamoDB) readParts(ctx context.Context, gen string, n, size int64) ([]byte, error) {
	if gen == "" || n <= 0 || n > maxParts {
		return nil, fmt.Errorf("%w: manifest names %d parts of generation %q", storage.ErrCorrupt, n, gen)
	}
	got := make(map[string][]byte, n)
	for start := int64(0); start < n; start += batchGet {
		keys := make([]map[string]types.AttributeValue, 0, batchGet)
		for i := start; i < n && i < start+batchGet; i++ {
			keys = append(keys, keyOf(d.partPK(gen, int(i))))
		}
		req := map[string]types.KeysAndAttributes{d.shared.name: {
			Keys:           keys,
			ConsistentRead: aws.Bool(d.consistent),
		}}
		for backoff := 10 * time.Millisecond; len(req) > 0; backoff = min(2*backoff, time.Second) {
			out, err := d.shared.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("reading parts: %w", err)
			}
			for _, item := range out.Responses[d.shared.name] {
				pk, _ := str(item["pk"])
				b, ok := bin(item["data"])
				if !ok {
					return nil, fmt.Errorf("%w: part without data", storage.ErrCorrupt)
				}
				got[pk] = b
			}
			req = out.UnprocessedKeys
			if len(req) > 0 {
				if err := sleep(ctx, backoff); err != nil {
					return nil, err
				}
			}
		}
	}
	if size < 0 || size > n*PartSize {
		size = 0
	}
	data := make([]byte, 0, size)
	for i := 0; i < int(n); i++ {
		b, ok := got[d.partPK(gen, i)]
		if !ok {
			return nil, errPartMissing
		}
		data = append(data, b...)
	}
	return data, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newGen() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *DynamoDB) put(ctx context.Context, key string, e *storage.Entry) error {
	return d.write(ctx, key, e, nil)
}

// errConflict means a conditional write found the manifest changed since
// it was read.
var errConflict = errors.New("changed concurrently")

// write is put; with want set, the manifest is written only if it is still
// in that state, and errConflict is returned otherwise (the parts written
// for it are removed).
func (d *DynamoDB) write(ctx context.Context, key string, e *storage.Entry, want *version) error {
	if e.Expired(time.Now()) {
		return d.delete(ctx, key)
	}
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return err
	}
	data := storage.Encode(e, d.comp)
	item := map[string]types.AttributeValue{
		"pk":             &types.AttributeValueMemberS{Value: d.pk(key)},
		"ns":             &types.AttributeValueMemberS{Value: d.ns},
		"k":              &types.AttributeValueMemberS{Value: key},
		"meta":           &types.AttributeValueMemberB{Value: storage.Encode(e.Meta(), storage.CompressionOff)},
		"body_size":      numAttr(int64(len(e.Body))),
		"size":           numAttr(int64(len(data))),
		versionAttribute: newVersion(),
	}
	ours := item[versionAttribute].(*types.AttributeValueMemberN).Value
	if e.URL != "" {
		item["url"] = &types.AttributeValueMemberS{Value: e.URL}
	}
	if len(e.Tags) > 0 {
		tags := make([]types.AttributeValue, len(e.Tags))
		for i, t := range e.Tags {
			tags[i] = &types.AttributeValueMemberS{Value: t}
		}
		item["tags"] = &types.AttributeValueMemberL{Value: tags}
	}
	var expires types.AttributeValue
	if !e.Expires.IsZero() {
		expires = numAttr(expirySeconds(e.Expires))
		item[ttlAttribute] = expires
	}
	base := itemSize(item) + itemOverhead
	if base+len("parts")+len("gen")+21+32 > ItemLimit {
		// The headers alone do not fit in an item. Do not leave an older
		// version behind the one that was not stored.
		if err := d.delete(ctx, key); err != nil {
			return err
		}
		return storage.ErrTooLarge
	}

	gen, parts := "", 0
	if base+len("data")+len(data) <= ItemLimit {
		item["data"] = &types.AttributeValueMemberB{Value: data}
	} else {
		gen, parts = newGen(), (len(data)+PartSize-1)/PartSize
		if err := d.writeParts(ctx, gen, data, expires); err != nil {
			d.cleanupParts(gen, parts)
			return fmt.Errorf("dynamodb put: %w", err)
		}
		item["parts"] = numAttr(int64(parts))
		item["gen"] = &types.AttributeValueMemberS{Value: gen}
	}
	in := &dynamodb.PutItemInput{
		TableName:    aws.String(d.shared.name),
		Item:         item,
		ReturnValues: types.ReturnValueAllOld,
	}
	if want != nil {
		cond, values := want.condition()
		in.ConditionExpression = aws.String(cond)
		if cond != "attribute_not_exists(pk)" {
			in.ExpressionAttributeNames = map[string]string{"#v": versionAttribute}
		}
		in.ExpressionAttributeValues = values
	}
	out, err := d.shared.client.PutItem(ctx, in)
	if err != nil {
		_, conflict := errors.AsType[*types.ConditionalCheckFailedException](err)
		if conflict && d.storedVersion(ctx, key) == ours {
			// The SDK retried a write that was applied but whose
			// answer was lost: the retry found the write's own version.
			// It is done (the parts it replaced expire with their TTL).
			return nil
		}
		if gen != "" {
			d.cleanupParts(gen, parts)
		}
		if conflict {
			return errConflict
		}
		return fmt.Errorf("dynamodb put: %w", err)
	}
	d.dropOldParts(ctx, out.Attributes, gen)
	return nil
}

// writeParts stores data as the parts of generation gen.
func (d *DynamoDB) writeParts(ctx context.Context, gen string, data []byte, expires types.AttributeValue) error {
	var reqs []types.WriteRequest
	for i := 0; len(data) > 0; i++ {
		n := min(len(data), PartSize)
		item := map[string]types.AttributeValue{
			"pk":   &types.AttributeValueMemberS{Value: d.partPK(gen, i)},
			"data": &types.AttributeValueMemberB{Value: data[:n]},
		}
		if expires != nil {
			item[ttlAttribute] = expires
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		data = data[n:]
	}
	return d.batchWrite(ctx, reqs)
}

// batchWrite runs reqs in BatchWriteItem calls, retrying unprocessed items.
func (d *DynamoDB) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	for len(reqs) > 0 {
		n := min(len(reqs), batchWrite)
		req := map[string][]types.WriteRequest{d.shared.name: reqs[:n]}
		reqs = reqs[n:]
		for backoff := 10 * time.Millisecond; len(req) > 0; backoff = min(2*backoff, time.Second) {
			out, err := d.shared.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req})
			if err != nil {
				return err
			}
			req = out.UnprocessedItems
			if len(req) > 0 {
				if err := sleep(ctx, backoff); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (d *DynamoDB) deleteParts(ctx context.Context, gen string, n int) error {
	reqs := make([]types.WriteRequest, n)
	for i := range reqs {
		reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: keyOf(d.partPK(gen, i))}}
	}
	return d.batchWrite(ctx, reqs)
}

// cleanupParts removes the parts of a Put that failed, in the background
// (the Put's ctx may be done, and the request must not wait). Parts it
// misses expire through TTL with their entry.
func (d *DynamoDB) cleanupParts(gen string, n int) {
	d.shared.goCleanup(func(ctx context.Context) {
		if err := d.deleteParts(ctx, gen, n); err != nil && ctx.Err() == nil {
			d.logger.Debug("removing the parts of a failed dynamodb put", zap.Error(err))
		}
	})
}

// dropOldParts removes the parts of a replaced or deleted manifest, unless
// they are the ones of generation keep. Failures are only logged: the
// entry itself is written or deleted, and parts with an expiry also go with
// TTL.
func (d *DynamoDB) dropOldParts(ctx context.Context, old map[string]types.AttributeValue, keep string) {
	n, ok := num(old["parts"])
	gen, _ := str(old["gen"])
	if !ok || gen == "" || gen == keep || n <= 0 || n > maxParts {
		return
	}
	if ns, _ := str(old["ns"]); ns != d.ns {
		return
	}
	if err := d.deleteParts(ctx, gen, int(n)); err != nil {
		d.logger.Debug("removing the parts of a replaced dynamodb entry", zap.Error(err))
	}
}

func (d *DynamoDB) delete(ctx context.Context, key string) error {
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return err
	}
	out, err := d.shared.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    aws.String(d.shared.name),
		Key:          keyOf(d.pk(key)),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return fmt.Errorf("dynamodb delete: %w", err)
	}
	d.dropOldParts(ctx, out.Attributes, "")
	return nil
}

// cbError carries an error returned by the List callback.
type cbError struct{ err error }

func (e cbError) Error() string { return e.err.Error() }

func (d *DynamoDB) list(ctx context.Context, prefix string, fn func(string, *storage.Entry) error) error {
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return err
	}
	in := &dynamodb.ScanInput{
		TableName:                aws.String(d.shared.name),
		ConsistentRead:           aws.Bool(d.consistent),
		ProjectionExpression:     aws.String("#k, #m, #bs"),
		ExpressionAttributeNames: map[string]string{"#ns": "ns", "#k": "k", "#m": "meta", "#bs": "body_size"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":ns": &types.AttributeValueMemberS{Value: d.ns},
		},
	}
	if prefix == "" {
		in.FilterExpression = aws.String("#ns = :ns AND attribute_exists(#k)")
	} else {
		in.FilterExpression = aws.String("#ns = :ns AND begins_with(#k, :p)")
		in.ExpressionAttributeValues[":p"] = &types.AttributeValueMemberS{Value: prefix}
	}
	pages := dynamodb.NewScanPaginator(d.shared.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("dynamodb list: %w", err)
		}
		now := time.Now()
		for _, item := range page.Items {
			key, ok := str(item["k"])
			meta, ok2 := bin(item["meta"])
			if !ok || !ok2 {
				continue
			}
			e, err := storage.DecodeMeta(meta)
			if err != nil || e.Expired(now) {
				continue // Get reports the corruption; the handler deletes it
			}
			if n, ok := num(item["body_size"]); ok {
				e.BodySize = n
			}
			if err := fn(key, e); err != nil {
				if errors.Is(err, storage.ErrStop) {
					return nil
				}
				return cbError{err}
			}
		}
	}
	return nil
}

func (d *DynamoDB) stats(ctx context.Context) (storage.Stats, error) {
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return storage.Stats{}, err
	}
	pages := dynamodb.NewScanPaginator(d.shared.client, &dynamodb.ScanInput{
		TableName:                aws.String(d.shared.name),
		ConsistentRead:           aws.Bool(d.consistent),
		FilterExpression:         aws.String("#ns = :ns AND attribute_exists(#k) AND (attribute_not_exists(#e) OR #e > :now)"),
		ProjectionExpression:     aws.String("#s"),
		ExpressionAttributeNames: map[string]string{"#ns": "ns", "#k": "k", "#e": ttlAttribute, "#s": "size"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":ns":  &types.AttributeValueMemberS{Value: d.ns},
			":now": numAttr(time.Now().Unix()),
		},
	})
	var s storage.Stats
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return storage.Stats{}, fmt.Errorf("dynamodb stats: %w", err)
		}
		for _, item := range page.Items {
			s.Entries++
			if n, ok := num(item["size"]); ok {
				s.Bytes += n
			}
		}
	}
	return s, nil
}

func (d *DynamoDB) deleteExpired(ctx context.Context) (int64, error) {
	if err := d.shared.ensure(ctx, d.CreateTable); err != nil {
		return 0, err
	}
	// expires_at holds whole seconds rounded up, so the scan takes every
	// item whose second has begun and the exact expiry in meta decides:
	// an entry is removed exactly when its Expires has passed, whatever
	// the second boundaries.
	at := time.Now()
	now := numAttr(at.Unix() + 1)
	names := map[string]string{"#ns": "ns", "#k": "k", "#e": ttlAttribute, "#m": "meta"}
	pages := dynamodb.NewScanPaginator(d.shared.client, &dynamodb.ScanInput{
		TableName:                aws.String(d.shared.name),
		FilterExpression:         aws.String("#ns = :ns AND attribute_exists(#k) AND #e <= :now"),
		ProjectionExpression:     aws.String("pk, #m"),
		ExpressionAttributeNames: names,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":ns":  &types.AttributeValueMemberS{Value: d.ns},
			":now": now,
		},
	})
	var n int64
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("dynamodb delete expired: %w", err)
		}
		for _, item := range page.Items {
			pk, ok := str(item["pk"])
			if !ok {
				continue
			}
			if meta, ok := bin(item["meta"]); ok {
				if m, err := storage.DecodeMeta(meta); err == nil && !m.Expired(at) {
					continue
				}
			}
			// Only if still expired: a concurrent Put may have replaced it.
			out, err := d.shared.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
				TableName:                 aws.String(d.shared.name),
				Key:                       keyOf(pk),
				ConditionExpression:       aws.String("#e <= :now"),
				ExpressionAttributeNames:  map[string]string{"#e": ttlAttribute},
				ExpressionAttributeValues: map[string]types.AttributeValue{":now": now},
				ReturnValues:              types.ReturnValueAllOld,
			})
			if _, ok := errors.AsType[*types.ConditionalCheckFailedException](err); ok {
				continue
			}
			if err != nil {
				return n, fmt.Errorf("dynamodb delete expired: %w", err)
			}
			n++
			d.dropOldParts(ctx, out.Attributes, "")
		}
	}
	return n, nil
}
