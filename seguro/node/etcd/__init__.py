"""The etcd adapter (Patroni's DCS seam): leases, campaign, fenced appends, the key layout, the master
watch. The only code that speaks to etcd."""
