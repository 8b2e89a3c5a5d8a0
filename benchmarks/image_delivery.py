"""How many camera images reach a subscriber in another process, per QoS and DDS setting.

A publisher process sends ``sensor_msgs/Image`` (rgb8, ``--width`` x ``--height``) at
``--rate-hz`` for ``--seconds`` (it starts once a subscription has matched, so discovery time is
not counted as loss); a subscriber process counts what arrives. This is what a camera driver
and ``hmr_node`` do, without the node: the figures are the middleware's. Each variant sets the
two reliabilities and the environment of both processes (``FASTDDS_BUILTIN_TRANSPORTS``, a Fast
DDS XML profile through ``FASTRTPS_DEFAULT_PROFILES_FILE``). A private ``ROS_DOMAIN_ID`` keeps
runs apart from other ROS processes on the machine.

Usage:

    python benchmarks/image_delivery.py                      # the standard variants, a table
    python benchmarks/image_delivery.py --json delivery.json # and a JSON file

The recipe drawn from these figures is in docs/dds-large-images.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPOSITORY = HERE.parent.parent
LARGE_IMAGES_PROFILE = REPOSITORY / 'config' / 'fastdds_large_images.xml'
TOPIC = '/camera/image_raw'


def _qos(reliability: str, depth: int = 1):  # noqa: ANN202
    """Keep-last ``depth``: 1 as hmr_node's image subscription (and most drivers' publishers)."""
    from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=QoSReliabilityPolicy.BEST_EFFORT
        if reliability == 'best_effort'
        else QoSReliabilityPolicy.RELIABLE,
    )


def publish(args: argparse.Namespace) -> int:
    """Child role: publish ``rate * seconds`` images after a subscription matched."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('image_delivery_publisher')
    publisher = node.create_publisher(Image, TOPIC, _qos(args.pub))
    deadline = time.monotonic() + 20.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let the reader's side of discovery settle as well
    message = Image(height=args.height, width=args.width, encoding='rgb8', step=3 * args.width)
    pixels = np.random.default_rng(0).integers(0, 255, 3 * args.width * args.height, np.uint8)
    message.data = pixels.tobytes()
    count = round(args.rate_hz * args.seconds)
    start = time.monotonic()
    for index in range(count):
        now_ns = time.time_ns()
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
        message.header.frame_id = str(index)
        publisher.publish(message)
        delay = start + (index + 1) / args.rate_hz - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(1.0)  # reliable samples still in flight
    print(json.dumps({'published': count, 'seconds': time.monotonic() - start}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def subscribe(args: argparse.Namespace) -> int:
    """Child role: count images until 3 s pass without one (or 60 s in all)."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('image_delivery_subscriber')
    received = []
    node.create_subscription(
        Image, TOPIC, lambda m: received.append(m.header.frame_id), _qos(args.sub)
    )
    start = time.monotonic()
    last = None
    while time.monotonic() - start < 60.0:
        rclpy.spin_once(node, timeout_sec=0.1)
        if received:
            last = (
                last
                if last is not None and len(received) == last[0]
                else (len(received), time.monotonic())
            )
            if time.monotonic() - last[1] > 3.0:
                break
    print(json.dumps({'received': len(received)}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _child(role: str, args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen:
    command = [
        sys.executable,
        str(HERE),
        role,
        '--pub',
        args.pub,
        '--sub',
        args.sub,
        '--width',
        str(args.width),
        '--height',
        str(args.height),
        '--rate-hz',
        str(args.rate_hz),
        '--seconds',
        str(args.seconds),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def measure(
    args: argparse.Namespace, extra_env: dict[str, str], domain: int, sides: str = 'both'
) -> dict:
    """One variant: subscriber and publisher processes; their counts.

    Args:
        args: Image size, rate, duration and the two reliabilities.
        extra_env: Environment of the variant.
        domain: ROS_DOMAIN_ID of both processes.
        sides: Which process gets ``extra_env``: 'both', 'publisher' or 'subscriber'.
    """
    base = dict(os.environ)
    base['ROS_DOMAIN_ID'] = str(domain)
    base.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env = {**base, **extra_env}
    subscriber = _child('subscribe', args, env if sides in ('both', 'subscriber') else base)
    time.sleep(1.0)
    publisher = _child('publish', args, env if sides in ('both', 'publisher') else base)
    published = json.loads(publisher.communicate(timeout=120)[0].strip().splitlines()[-1])
    received = json.loads(subscriber.communicate(timeout=120)[0].strip().splitlines()[-1])
    return {**published, **received, 'fraction': received['received'] / published['published']}


_PROFILE = {'FASTRTPS_DEFAULT_PROFILES_FILE': str(LARGE_IMAGES_PROFILE)}
VARIANTS: list[tuple[str, str, str, dict[str, str], str]] = [
    ('reliable -> best_effort, defaults', 'reliable', 'best_effort', {}, 'both'),
    ('reliable -> reliable, defaults', 'reliable', 'reliable', {}, 'both'),
    ('best_effort -> best_effort, defaults', 'best_effort', 'best_effort', {}, 'both'),
    (
        'best_effort -> best_effort, FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA',
        'best_effort',
        'best_effort',
        {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'},
        'both',
    ),
    (
        'best_effort -> best_effort, FASTDDS_BUILTIN_TRANSPORTS=SHM',
        'best_effort',
        'best_effort',
        {'FASTDDS_BUILTIN_TRANSPORTS': 'SHM'},
        'both',
    ),
    (
        'best_effort -> best_effort, FASTDDS_BUILTIN_TRANSPORTS=UDPv4',
        'best_effort',
        'best_effort',
        {'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4'},
        'both',
    ),
    (
        'best_effort -> best_effort, profile in both',
        'best_effort',
        'best_effort',
        _PROFILE,
        'both',
    ),
    ('reliable -> best_effort, profile in both', 'reliable', 'best_effort', _PROFILE, 'both'),
    (
        'best_effort -> best_effort, profile in the publisher only',
        'best_effort',
        'best_effort',
        _PROFILE,
        'publisher',
    ),
    (
        'best_effort -> best_effort, profile in the subscriber only',
        'best_effort',
        'best_effort',
        _PROFILE,
        'subscriber',
    ),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        'role', nargs='?', default='matrix', choices=('matrix', 'publish', 'subscribe')
    )
    parser.add_argument('--pub', default='reliable', choices=('reliable', 'best_effort'))
    parser.add_argument('--sub', default='best_effort', choices=('reliable', 'best_effort'))
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--rate-hz', type=float, default=30.0)
    parser.add_argument('--seconds', type=float, default=6.0)
    parser.add_argument('--variants', help='comma-separated indices of VARIANTS to run')
    parser.add_argument('--json', metavar='PATH', help='also write the results as JSON')
    args = parser.parse_args(argv)
    if args.role == 'publish':
        return publish(args)
    if args.role == 'subscribe':
        return subscribe(args)
    chosen = [VARIANTS[int(i)] for i in args.variants.split(',')] if args.variants else VARIANTS
    domain = 150 + os.getpid() % 50
    results = []
    print(f'{args.width}x{args.height} rgb8 at {args.rate_hz:g} Hz for {args.seconds:g} s')
    for name, pub, sub, env, sides in chosen:
        args.pub, args.sub = pub, sub
        figures = measure(args, env, domain, sides)
        results.append(
            {'variant': name, 'publisher': pub, 'subscriber': sub, 'env': env, 'env_in': sides}
            | figures
        )
        print(
            f'{figures["received"]:4d} / {figures["published"]:4d} '
            f'({100 * figures["fraction"]:5.1f} %)  {name}',
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())
