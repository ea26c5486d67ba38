"""The HTTP layer under botocore: TLS contexts shared between clients, built once per setting."""

from __future__ import annotations

import ssl

from botocore.httpsession import DEFAULT_CA_BUNDLE

from collector.aws.http import BoundedHttpSession


def test_clients_with_the_same_verify_setting_share_one_tls_context() -> None:
    """Loading a CA bundle is ~40 ms of CPU: an organisation's clients load it once."""
    first, _ = BoundedHttpSession(verify=True)._build_ssl_contexts(None)
    second, _ = BoundedHttpSession(verify=True)._build_ssl_contexts(None)
    assert first is second
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname


def test_each_verify_setting_keeps_its_own_tls_context() -> None:
    """--no-verify-ssl and a custom CA bundle never get the default context, nor it theirs."""
    default, _ = BoundedHttpSession(verify=True)._build_ssl_contexts(None)
    unverified, _ = BoundedHttpSession(verify=False)._build_ssl_contexts(None)
    # botocore hands a CA bundle's path as `verify` (the stubs say bool only).
    bundle, _ = BoundedHttpSession(verify=DEFAULT_CA_BUNDLE)._build_ssl_contexts(None)  # type: ignore[arg-type]
    assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
    assert bundle.verify_mode == ssl.CERT_REQUIRED
    assert len({id(default), id(unverified), id(bundle)}) == 3
