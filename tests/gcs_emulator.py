"""A Google Cloud Storage server on localhost for the gs:// tests.

  python tests/gcs_emulator.py PORT BUCKET

It is gcp-storage-emulator (in memory) with two additions that real GCS has:
downloads carry the `x-goog-generation` header, which tensorstore (Orbax's
array writer) needs to read back a file it wrote, and objects can be moved
(gcsfs tries `moveTo` first and backs off for half a minute without it).
It also serves each connection in its own thread: a client holding a
keep-alive connection open would otherwise stall every other client. The
requests themselves run one at a time: the emulator's in-memory storage is
not thread-safe (under load, a resumable upload once lost its session). gcsfs is pointed at it
with STORAGE_EMULATOR_HOST, tensorstore with TENSORSTORE_GCS_HTTP_URL.
"""

from http import server as http_server
import re
import sys
import threading

from gcp_storage_emulator import server
from gcp_storage_emulator import settings
from gcp_storage_emulator.handlers import objects

_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
  _download(request, response, storage, *args, **kwargs)
  try:
    obj = storage.get_file_obj(request.params['bucket_name'],
                               request.params['object_id'])
  except Exception:  # pylint: disable=broad-except  # a 404 was already set
    return
  response['x-goog-generation'] = str(obj['generation'])
  response['x-goog-metageneration'] = str(obj.get('metageneration', 1))


def _move(request, response, storage, *args, **kwargs):
  request.params['dest_bucket_name'] = request.params['bucket_name']
  objects.copy(request, response, storage, *args, **kwargs)
  if response.status.value < 300:
    storage.delete_file(request.params['bucket_name'],
                        request.params['object_id'])


def _one_at_a_time() -> None:
  """Serialise the handlers, not the connections: a handler starts after its
  request line and headers have arrived, so an idle keep-alive connection
  holds no lock."""
  lock = threading.Lock()
  for name in ('do_GET', 'do_POST', 'do_DELETE', 'do_PUT', 'do_PATCH'):
    handler = getattr(server.RequestHandler, name)

    def locked(self, _handler=handler):
      with lock:
        _handler(self)
    setattr(server.RequestHandler, name, locked)


def main(port: int, bucket: str) -> None:
  _one_at_a_time()
  objects.download = _download_with_generation  # objects.get calls it too
  for _, methods in server.HANDLERS:
    for method, handler in methods.items():
      if handler is _download:
        methods[method] = _download_with_generation
  move = (rf'^{re.escape(settings.API_ENDPOINT)}/b/(?P<bucket_name>[-.\w]+)/o/'
          r'(?P<object_id>.*[^/]+)/moveTo/o/(?P<dest_object_id>.*[^/]+)$')
  server.HANDLERS = ((move, {'POST': _move}),) + server.HANDLERS
  server.server.HTTPServer = http_server.ThreadingHTTPServer
  server.create_server('127.0.0.1', port, in_memory=True,
                       default_bucket=bucket).run()


if __name__ == '__main__':
  main(int(sys.argv[1]), sys.argv[2])
