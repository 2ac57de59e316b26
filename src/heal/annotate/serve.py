"""`heal annotate serve`: import the pairs, check where the app may listen, run it with uvicorn.

    heal annotate serve --pairs_path data/processed/pairs.jsonl --db_path labels.sqlite --labels_per_pair 2

Credentialed pairs (MIMIC: `source: mimic`, or a file whose metadata says so) are served only on loopback unless
--allow_credentialed_on_network is given: the PhysioNet data use agreement covers named people, not a network.
"""

from __future__ import annotations

from heal.annotate.config import ServeConfig
from heal.annotate.store import Store
from heal.errors import HealError
from heal.serve import host_is_loopback  # a host name is treated as a network interface

OVERRIDE_FLAG = "--allow_credentialed_on_network"


def prepare(config: ServeConfig) -> tuple[Store, int]:
    """(store, pairs added) after checking every setting; raises HealError before anything listens."""
    if config.labels_per_pair < 1 or config.labels_per_pair > 50:
        raise HealError(f"--labels_per_pair {config.labels_per_pair}: must be 1-50")
    if not 0 < config.port <= 65535:
        raise HealError(f"--port {config.port}: must be 1-65535")
    if config.reservation_minutes <= 0:
        raise HealError(f"--reservation_minutes {config.reservation_minutes}: must be positive")
    pairs, credentialed = [], False
    if config.pairs_path:
        from heal.annotate.pairs import load_pairs

        pairs, credentialed = load_pairs(config.pairs_path)
    guarded = not host_is_loopback(config.host) and not config.allow_credentialed_on_network
    if guarded and credentialed:
        _refuse(config.host)
    store = Store(config.db_path)
    if guarded and store.credentialed():  # pairs imported earlier
        _refuse(config.host)
    added = store.import_pairs(pairs, credentialed) if pairs else 0
    if store.count("SELECT COUNT(*) FROM pairs") == 0:
        raise HealError(f"{config.db_path}: no pairs to label; pass --pairs_path with a preference or candidate file")
    if store.count("SELECT COUNT(*) FROM annotators") == 0:
        print(f"heal annotate: no annotators yet; add one with `heal annotate add-annotator NAME --db_path "
              f"{config.db_path} --admin`", flush=True)
    return store, added


def _refuse(host: str) -> None:
    raise HealError(f"--host {host}: the pairs come from credentialed data (source: mimic) and would be "
                    f"reachable from the network; serve on 127.0.0.1, or pass {OVERRIDE_FLAG} if everyone who "
                    "can reach this host is covered by the PhysioNet data use agreement")


def serve(config: ServeConfig) -> None:
    import uvicorn

    from heal.annotate.app import create_app

    store, added = prepare(config)
    if not host_is_loopback(config.host):
        print(f"heal annotate: listening on {config.host}, reachable from the network: tokens are bearer secrets, so "
              "put the app behind a reverse proxy that terminates TLS", flush=True)
    app = create_app(store, config.labels_per_pair, config.reservation_minutes)
    total = store.count("SELECT COUNT(*) FROM pairs")
    print(f"heal annotate: {total} pairs ({added} new), {config.labels_per_pair} labels each; "
          f"http://{config.host}:{config.port}/ (Ctrl-C stops)", flush=True)
    # log_level warning: no access log lines; nothing logs bodies (prompts and answers may be clinical text)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
