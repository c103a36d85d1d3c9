"""Small sample texts the tests index, search and rerank."""

from __future__ import annotations

RUNBOOK = """# VPN runbook

## Reset a token

Open the self-service portal, choose *Tokens*, then *Reset*. The new token is valid for 90 days.

## Error 809

Error 809 means the firewall blocks L2TP. Ask the network team to open UDP 500 and 4500.
"""

FAQ = "Our standard plan costs 30 EUR per seat per month. Discounts start at 100 seats."

# Passages of every kind a reranker meets: English, Chinese, tiny, long.
PASSAGES = [
    "After waiting about 15 minutes, escalate the incident to the incident response team manager.",
    "Media sanitization renders access to target data infeasible.",
    "个人信息处理者应当采取必要措施保障所处理的个人信息的安全。",
    "ok",
    "Patch management is the process for identifying, acquiring, installing, and verifying patches. " * 6,
]
