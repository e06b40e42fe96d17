# Switchyard console image: one image for web (daphne), worker and beat (celery); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 switchyard
WORKDIR /app

# Dependencies first, so code changes reuse this layer. Every pinned package ships a manylinux wheel for
# CPython 3.11 but python-ldap (LDAP sign-in), which compiles against OpenLDAP's and SASL's headers: the compiler is
# removed again in the same layer; the -dev packages stay, and with them the libraries python-ldap loads.
# requirements.txt only: the runtime's own packages; the development servers and test tools (requirements-dev.txt)
# stay out of the image.
COPY requirements.txt .
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libldap2-dev libsasl2-dev \
    && pip install -r requirements.txt \
    && apt-get purge -y --auto-remove gcc \
    && rm -rf /var/lib/apt/lists/*

# The code and the collected static files belong to root: the processes run as switchyard (uid 1000, numeric so
# Kubernetes' runAsNonRoot can check it) and can change none of it; the manifests mount the root filesystem read-only.
COPY . .

# Static files are collected into the image at build time (STATIC_ROOT=/app/staticfiles). Settings refuse to load
# without a SECRET_KEY when DEBUG is off; this throwaway value exists only for this build step.
RUN SECRET_KEY=collectstatic-build-only python manage.py collectstatic --noinput
USER 1000:1000

EXPOSE 8000
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "console.asgi:application"]
