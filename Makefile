# Two commands on a fresh machine:  `make run` (the console with demo traffic) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EMBEDDED ?= 0
PORT ?= 8000

.PHONY: run test drills lint format install chromium stunnel ldap rabbitmq-management clean

$(STAMP): requirements.txt requirements-dev.txt | ldap
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m tools.run $(if $(filter 1,$(EMBEDDED)),--embedded,) --port $(PORT)

# Browser tests drive Debian's Chromium; install it when absent (needs root, as on CI).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# python-ldap (LDAP sign-in) compiles against OpenLDAP's and Cyrus SASL's headers, and the sign-in tests start Debian's
# slapd with a small directory of their own (tests/sso); install them when absent (needs root, as on CI).
ldap:
	@test -f /usr/include/ldap.h -a -f /usr/include/sasl/sasl.h -a -x /usr/sbin/slapd -a -x /usr/bin/ldapadd || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libldap2-dev libsasl2-dev slapd ldap-utils; }

# Kafka over TLS is tested through stunnel in front of tansu (tools/secure_services.py); install it when absent.
stunnel:
	@command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stunnel4; }

# The adapter's management-API paths are tested against the machine's RabbitMQ; the plugin is off by default.
rabbitmq-management: $(STAMP)
	@command -v rabbitmq-plugins >/dev/null || { echo "rabbitmq-plugins not found: RabbitMQ must run on this machine"; exit 1; }
	@rabbitmq-plugins enable rabbitmq_management >/dev/null
	@$(PY) -c "from tools.services import wait_for_port; wait_for_port('127.0.0.1', 15672, 60)"

test: $(STAMP) chromium stunnel rabbitmq-management
	$(PY) -m tools.services run --with-tansu -- $(PY) -m pytest $(PYTEST_ARGS)

# The drills (hostile input, permission matrix, double submission, crashes, outages): the fast ones from the suite and
# the slow ones in bench/drills, printed as one table and written to docs/reliability.md (tests/drills/figures.py).
DRILLS_FIGURES := .run/drills.jsonl
drills: $(STAMP) chromium
	@mkdir -p .run && rm -f $(DRILLS_FIGURES)
	-DRILLS_FIGURES=$(abspath $(DRILLS_FIGURES)) $(PY) -m tools.services run --with-tansu -- \
		$(PY) -m pytest tests/drills bench/drills tests/outbox/test_reliability.py tests/browser/test_double_click.py tests/browser/test_xss_drill.py \
		-p no:cacheprovider $(PYTEST_ARGS)
	$(PY) -m tests.drills.figures $(DRILLS_FIGURES) docs/reliability.md

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .run .pytest_cache
