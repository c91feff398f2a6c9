"""Files over HTTPS, for the test that makes assets from URLs (tests/upload_url.rs).

Usage: python3 https_files.py DIR CERT KEY
Serves DIR on 127.0.0.1 at a free port, which it prints on its first line, with Python's own
http.server over TLS. /redirect/NAME answers 302 to /NAME; /hang/NAME answers its head and
then sends nothing.
"""
import functools
import http.server
import ssl
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/redirect/'):
            self.send_response(302)
            self.send_header('Location', self.path[len('/redirect'):])
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if self.path.startswith('/hang/'):
            self.send_response(200)
            self.send_header('Content-Length', '1000000')
            self.end_headers()
            self.wfile.flush()
            time.sleep(120)
            return
        super().do_GET()

    def log_message(self, fmt, *args):
        sys.stderr.write('https_files: ' + (fmt % args) + '\n')


def main():
    directory, cert, key = sys.argv[1:4]
    handler = functools.partial(Handler, directory=directory)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
