package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL section reads its database
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// The PostgreSQL section's tenant: the same cycle as section 3, its
// helpdesk database on the server of --postgres (a ProvisioningConfig
// points there, as a production tenant's would).
const (
	pgCycleNS    = "bench-cycle-pg"
	pgCycleToken = "entra-pg"
	pgDBSecret   = "helpdesk-database"
)

// postgresPrefix is what the dev stack must allow a tenant's database to
// point at for --postgres: scheme, user, host and port.
func postgresPrefix(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", fmt.Errorf("--postgres %q: want postgres://USER@HOST:PORT/DATABASE", raw)
	}
	return u.Scheme + "://" + u.User.String() + "@" + u.Host + "/", nil
}

// freshPostgres drops and creates the database of raw (connecting to the
// server's postgres database), so that every run starts empty, and opens
// it for reading.
func freshPostgres(ctx context.Context, raw string) (*sql.DB, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	name := strings.Trim(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	adb, err := sql.Open("pgx", admin.String())
	if err != nil {
		return nil, err
	}
	defer adb.Close()
	quoted := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	for _, stmt := range []string{"DROP DATABASE IF EXISTS " + quoted + " WITH (FORCE)", "CREATE DATABASE " + quoted} {
		if _, err := adb.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s on %s: %w (is PostgreSQL running there? --postgres \"\" skips this section)", stmt, u.Host, err)
		}
	}
	return sql.Open("pgx", raw)
}

// postgresCycle runs section 3 again in a tenant whose helpdesk database
// is PostgreSQL (--postgres); its figures go to res.PostgresCycle.
func (b *bench) postgresCycle(ctx context.Context, res *Results) error {
	raw, db := b.o.Postgres, b.pg
	if db == nil {
		return nil
	}
	if err := b.kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pgCycleNS}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", pgCycleNS, err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: pgDBSecret, Namespace: pgCycleNS},
		StringData: map[string]string{"url": raw}}
	if err := b.kube.Create(ctx, secret); err != nil {
		return fmt.Errorf("creating Secret %s/%s: %w", pgCycleNS, pgDBSecret, err)
	}
	cfg := &scimv1.ProvisioningConfig{
		ObjectMeta: metav1.ObjectMeta{Name: scimv1.ProvisioningConfigName, Namespace: pgCycleNS},
		Spec: scimv1.ProvisioningConfigSpec{
			Database: &scimv1.TenantDatabase{SecretRef: scimv1.DatabaseSecretReference{Name: pgDBSecret, Key: "url"}},
		},
	}
	if err := b.kube.Create(ctx, cfg); err != nil {
		return fmt.Errorf("creating ProvisioningConfig %s/%s: %w", pgCycleNS, cfg.Name, err)
	}
	b.settle(ctx, time.Minute)
	res.PostgresCycle = &CycleResult{}
	t := cycleTarget{ns: pgCycleNS, token: pgCycleToken, description: "make bench: Entra-like initial cycle on PostgreSQL",
		dialect: "postgres", db: db}
	_, err := b.runCycle(ctx, t, res.PostgresCycle, nil)
	return err
}
