# ADA-SAM Studio as a Hugging Face Docker Space (or any container host).
#
#   docker build -t adasam-studio .
#   docker run -p 7860:7860 -v adasam-data:/data adasam-studio
#
# Runs as a non-root user (uid 1000, as Spaces require) on port 7860. Runtime data (SQLite
# database, blobs, model versions) goes to ADASAM_DATA_DIR=/data: mount a volume there. On a
# Space, /data is a storage bucket without file locking: keep the live database on local disk
# instead (DATABASE_URL=sqlite:////home/user/db/adasam.sqlite3) and back it up to a Hub dataset
# (see `python -m storage --help`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_OFFLINE=1 \
    ADASAM_HOST=0.0.0.0 \
    ADASAM_PORT=7860 \
    ADASAM_DATA_DIR=/data

RUN useradd --create-home --uid 1000 user \
    && mkdir -p /data \
    && chown user:user /data

WORKDIR /home/user/app
COPY --chown=user:user requirements.txt .
# Gradio's OAuth extra, for "Sign in with Hugging Face" on a Space (hf_oauth: true).
RUN pip install -r requirements.txt authlib==1.9.9 itsdangerous==2.2.0

COPY --chown=user:user app.py ./
COPY --chown=user:user adasam ./adasam
COPY --chown=user:user storage ./storage
COPY --chown=user:user learning ./learning
COPY --chown=user:user studio ./studio
COPY --chown=user:user assets ./assets
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('ADASAM_PORT', '7860'), timeout=4)"
CMD ["python", "app.py"]
