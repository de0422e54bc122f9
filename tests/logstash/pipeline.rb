# Runs the filters of a rendered Logstash pipeline, as Logstash's plugins run them, on
# events given as JSON on stdin: {"ops": [...], "events": [{...}, ...]}; prints the events.
#
# - gsub: logstash-filter-mutate `gsub_dynamic_fields`: value.gsub(Regexp.new(needle), replacement)
# - grok: logstash-filter-grok with jls-grok: each pattern (already expanded from the
#   pattern library) compiled as a Regexp (Onigmo here, Oniguruma's Java port in Logstash),
#   first match wins (break_on_match), named captures set as fields, empty captures dropped
#   (keep_empty_captures => false), "_grokparsefailure"-style tag on no match.
# - ruby: logstash-filter-ruby `register`: eval("@codeblock = lambda { |event, &new_event_block|
#   #{@code} }", binding, "(ruby filter code)"), then @codeblock.call(event); an exception
#   tags the event "_rubyexception".
require "json"

class Event
  def initialize(data) = @data = data
  attr_reader :data

  def path(ref) = ref.start_with?("[") ? ref.scan(/\[([^\]]+)\]/).flatten : [ref]

  def get(ref)
    path(ref).reduce(@data) { |node, key| node.is_a?(Hash) ? node[key] : nil }
  end

  def set(ref, value)
    keys = path(ref)
    node = keys[0..-2].reduce(@data) { |n, k| n[k] ||= {} }
    node[keys[-1]] = value
  end

  def include?(ref) = !get(ref).nil?
  def tag(name) = ((@data["tags"] ||= []) << name)
end

class Filters
  def gsub(op, event)
    op["rules"].each do |field, needle, replacement|
      value = event.get(field)
      event.set(field, value.gsub(Regexp.new(needle), replacement)) if value.is_a?(String)
    end
  end

  def grok(op, event)
    @grok ||= {}
    regexes = (@grok[op.object_id] ||= op["patterns"].map { |p| Regexp.new(p) })
    value = event.get(op["field"])
    match = regexes.lazy.map { |r| r.match(value.to_s) }.find { |m| m }
    unless match
      op["tag_on_failure"].each { |t| event.tag(t) }
      return
    end
    match.names.each do |name|
      captured = match[name]
      next if captured.nil? || (captured.empty? && !op["keep_empty_captures"])
      event.set(name, captured)
    end
  end

  def ruby(op, event)
    @ruby ||= {}
    block = (@ruby[op["code"]] ||= compile(op["code"]))
    block.call(event)
  rescue Exception => e
    event.tag("_rubyexception")
    event.set("_rubyexception_message", e.message)
  end

  def compile(code)
    eval("@codeblock = lambda { |event, &new_event_block| #{code} }", binding, "(ruby filter code)")
  end
end

input = JSON.parse($stdin.read)
filters = Filters.new
out = input["events"].map do |data|
  event = Event.new(data)
  input["ops"].each do |op|
    next if op["if_field"] && !event.include?(op["if_field"])
    filters.public_send(op["type"], op, event)
  end
  event.data
end
puts JSON.generate(out)
