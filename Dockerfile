# Container job: `docker run --rm -v $PWD/out:/data -e AWS_... collector` sweeps the account.
FROM python:3.11-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY collector ./collector
# The production install only: no moto, no Flask (the emulator is an extra).
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 collector \
    && mkdir /data && chown collector /data

USER collector
WORKDIR /home/collector
ENV COLLECTOR_OUTPUT=/data/{account_id}/{date}.jsonl.gz
VOLUME /data
# SIGTERM (docker stop) ends the sweep gracefully with exit code 143; --resume finishes it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["collector"]
CMD ["sweep"]
