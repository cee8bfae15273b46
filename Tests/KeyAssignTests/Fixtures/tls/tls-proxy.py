"""A TLS terminator for keyassign's tests: accepts TLS on 127.0.0.1 (a free port, printed on
stdout) with server.pem, and forwards every connection's bytes to 127.0.0.1:UPSTREAM_PORT,
where the sandbox license server speaks plain HTTP. Runs until killed. LISTEN_HOST (default
127.0.0.1) is where it listens: 127.0.0.2 is a loopback address that server.pem does not name.

    python3 tls-proxy.py UPSTREAM_PORT [LISTEN_HOST]
"""
import asyncio
import os
import ssl
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main(upstream_port, listen_host):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(HERE, "server.pem"), os.path.join(HERE, "server-key.pem"))

    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(handle, listen_host, 0, ssl=context)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"))
