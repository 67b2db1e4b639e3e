#!/bin/sh
# RW-MQTT: our MQTT client against mosquitto's own command-line clients, in
# the same run, through one private mosquitto on a free loopback port.
#
# usage: bench/mqtt.sh [BUILD_DIR=build] [N=20000] [ROUNDS=3]
# Alternates ours and the peer ROUNDS times for each workload and prints the
# medians and ratios:
#   mqtt_ingest_msgs_per_s           mosquitto_pub -l floods N JSON payloads
#                                    (QoS 1); our client decodes them
#   mosquitto_sub_ingest_msgs_per_s  the same flood into mosquitto_sub
#   mqtt_ingest_ratio_vs_mosquitto_sub
#   mqtt_publish_qos1_msgs_per_s     our client: N ~300-byte alerts, QoS 1,
#                                    until every acknowledgement is back
#   mosquitto_pub_qos1_msgs_per_s    mosquitto_pub -l -q 1, the same alerts
#   mqtt_publish_ratio_vs_mosquitto_pub
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
n=${2:-20000}
rounds=${3:-3}
case $build in /*) ;; *) build=$here/$build ;; esac
ours=$build/bench/bench_mqtt
mosquitto=${PDM_MOSQUITTO:-/usr/sbin/mosquitto}

[ -x "$ours" ] || { echo "mqtt.sh: $ours not built (ninja -C $build)" >&2; exit 1; }
tmp=$(mktemp -d)
chmod 0755 "$tmp"
broker_pid=
cleanup() {
	[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
	echo "listener $port 127.0.0.1"
	echo "allow_anonymous true"
	echo "persistence false"
	echo "log_dest none"
	echo "max_queued_messages 0"
	# as root mosquitto would switch to its own user; nothing here needs that
	[ "$(id -u)" = 0 ] && echo "user root"
} >"$tmp/mosquitto.conf"
"$mosquitto" -c "$tmp/mosquitto.conf" 2>"$tmp/broker.log" &
broker_pid=$!
i=0
until /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "mqtt.sh: mosquitto did not start" >&2; cat "$tmp/broker.log" >&2; exit 1; }
	sleep 0.05
done

r=1
while [ $r -le "$rounds" ]; do
	for mode in ingest-ours ingest-peer publish-ours publish-peer; do
		"$ours" "$port" "$n" "$mode" | awk '{print $2}' >>"$tmp/$mode"
	done
	r=$((r + 1))
done

median() { sort -n "$1" | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
io=$(median "$tmp/ingest-ours")
ip=$(median "$tmp/ingest-peer")
po=$(median "$tmp/publish-ours")
pp=$(median "$tmp/publish-peer")
echo "mqtt_ingest_msgs_per_s $io msg/s"
echo "mosquitto_sub_ingest_msgs_per_s $ip msg/s"
awk -v a="$io" -v b="$ip" 'BEGIN{printf "mqtt_ingest_ratio_vs_mosquitto_sub %.3f ratio\n", a/b}'
echo "mqtt_publish_qos1_msgs_per_s $po msg/s"
echo "mosquitto_pub_qos1_msgs_per_s $pp msg/s"
awk -v a="$po" -v b="$pp" 'BEGIN{printf "mqtt_publish_ratio_vs_mosquitto_pub %.3f ratio\n", a/b}'
